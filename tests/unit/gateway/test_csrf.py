from gateway import csrf

ORIGIN = "https://auth.example.com"


def test_same_origin_and_absent_headers_pass() -> None:
    assert csrf.origin_allowed(None, None, ORIGIN)
    assert csrf.origin_allowed(ORIGIN, "same-origin", ORIGIN)
    assert csrf.origin_allowed(None, "none", ORIGIN)


def test_cross_site_is_refused() -> None:
    assert not csrf.origin_allowed(None, "cross-site", ORIGIN)
    assert not csrf.origin_allowed(None, "same-site", ORIGIN)
    assert not csrf.origin_allowed("https://evil.example", None, ORIGIN)
    assert not csrf.origin_allowed("https://auth.example.com:8443", "same-origin", ORIGIN)


def test_token_is_bound_to_the_session() -> None:
    token = csrf.token_for(b"k", "ses_1")
    assert csrf.bound_to_session(b"k", token, "ses_1")
    assert not csrf.bound_to_session(b"k", token, "ses_2")
    assert not csrf.bound_to_session(b"other", token, "ses_1")


def test_header_must_equal_cookie() -> None:
    assert csrf.header_matches_cookie("abc", "abc")
    assert not csrf.header_matches_cookie("abc", "abd")
    assert not csrf.header_matches_cookie(None, "abc")
    assert not csrf.header_matches_cookie("", "")


def test_origins_compare_after_normalisation() -> None:
    assert csrf.origin_allowed("https://AUTH.example.com", None, "https://auth.example.com:443")
    assert csrf.origin_allowed("http://127.0.0.1:8080", None, "http://127.0.0.1:8080")
    assert not csrf.origin_allowed("http://auth.example.com", None, "https://auth.example.com")
    assert not csrf.origin_allowed("https://auth.example.com:99999", None, "https://auth.example.com")
    assert not csrf.origin_allowed("null", None, "https://auth.example.com")
