"""Identity rules without I/O: password and email policy, tokens, lockout, mail texts."""
