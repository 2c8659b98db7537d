//! HTTP basic auth (`--basic-auth-username/--basic-auth-password`). PM2 splits the decoded
//! credentials at every `:`, so a password containing one never matches; pmr splits at the first
//! (RFC 7617), compares in constant time, and accepts the scheme name in any case.

pub struct BasicAuth {
    /// `user:password`, the form the client sends, encoded.
    expected: Vec<u8>,
}

impl BasicAuth {
    pub fn new(user: &str, password: &str) -> Result<BasicAuth, String> {
        if user.contains(':') {
            return Err(format!(
                "basic auth username {user:?} contains ':', which basic auth cannot carry"
            ));
        }
        Ok(BasicAuth {
            expected: format!("{user}:{password}").into_bytes(),
        })
    }

    /// Does this `Authorization` header value carry the right credentials?
    pub fn allows(&self, header: Option<&[u8]>) -> bool {
        let Some(h) = header else { return false };
        let Some(sp) = h.iter().position(|&b| b == b' ') else {
            return false;
        };
        if !h[..sp].eq_ignore_ascii_case(b"basic") {
            return false;
        }
        match decode_base64(h[sp + 1..].trim_ascii()) {
            Some(given) => constant_time_eq(&given, &self.expected),
            None => false,
        }
    }
}

/// Compares without stopping at the first difference, so timing does not reveal how much of a
/// guess was right (the length may leak; it says little).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 with optional padding; `None` on anything else.
fn decode_base64(s: &[u8]) -> Option<Vec<u8>> {
    let s = match s.iter().position(|&b| b == b'=') {
        Some(p) if s[p..].iter().all(|&b| b == b'=') && s[p..].len() <= 2 => &s[..p],
        Some(_) => return None,
        None => s,
    };
    if s.len() % 4 == 1 {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        assert_eq!(decode_base64(b"dTpw").unwrap(), b"u:p");
        assert_eq!(decode_base64(b"dTpwOnc=").unwrap(), b"u:p:w");
        assert_eq!(decode_base64(b"dTpwOnc").unwrap(), b"u:p:w");
        assert_eq!(
            decode_base64(b"YWxhZGRpbjpvcGVuc2VzYW1l").unwrap(),
            b"aladdin:opensesame"
        );
        assert_eq!(decode_base64(b"YQ==").unwrap(), b"a");
        assert!(decode_base64(b"YQ=a").is_none());
        assert!(decode_base64(b"Y").is_none());
        assert!(decode_base64(b"d!pw").is_none());
    }

    #[test]
    fn checks_credentials() {
        let a = BasicAuth::new("u", "p:w").unwrap();
        assert!(a.allows(Some(b"Basic dTpwOnc=")));
        assert!(a.allows(Some(b"basic dTpwOnc=")));
        assert!(!a.allows(Some(b"Basic dTpw")));
        assert!(!a.allows(Some(b"Bearer dTpwOnc=")));
        assert!(!a.allows(Some(b"Basic")));
        assert!(!a.allows(None));
        assert!(BasicAuth::new("a:b", "c").is_err());
    }
}
