from gateway.client_ip import client_ip, parse_networks


def test_peer_is_used_without_trusted_proxies() -> None:
    assert client_ip("203.0.113.9", ["198.51.100.1"], []) == "203.0.113.9"


def test_forwarded_for_ignored_from_untrusted_peer() -> None:
    trusted = parse_networks("10.0.0.0/8")
    assert client_ip("203.0.113.9", ["198.51.100.1"], trusted) == "203.0.113.9"


def test_right_most_untrusted_entry_wins() -> None:
    trusted = parse_networks("10.0.0.0/8, 192.168.1.1")
    # The client may forge left-most entries; only what our proxies appended counts.
    headers = ["1.2.3.4, 198.51.100.7", "10.1.1.1"]
    assert client_ip("192.168.1.1", headers, trusted) == "198.51.100.7"


def test_garbage_hop_falls_back_to_peer() -> None:
    trusted = parse_networks("10.0.0.0/8")
    assert client_ip("10.0.0.2", ["not-an-ip"], trusted) == "10.0.0.2"


def test_all_hops_trusted_gives_left_most() -> None:
    trusted = parse_networks("10.0.0.0/8")
    assert client_ip("10.0.0.2", ["10.0.0.5, 10.0.0.3"], trusted) == "10.0.0.5"
