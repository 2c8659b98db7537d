//! PM2's wire format (the `amp` and `amp-message` packages under its axon sockets): a message is
//! a header byte `version << 4 | argc` (version 1, 1 to 15 arguments), then for each argument a
//! 4-byte big-endian length and that many bytes. An argument starting `s:` is a string, `j:` is
//! JSON; anything else is raw bytes. The whole message is bounded by [`super::MAX_FRAME`] here,
//! where PM2 has no bound.

use super::MAX_FRAME;
use serde_json::Value;

pub const VERSION: u8 = 1;

/// One argument of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Str(String),
    Json(Value),
    Raw(Vec<u8>),
}

impl Arg {
    fn parse(bytes: &[u8]) -> Result<Arg, AmpError> {
        match bytes {
            [b's', b':', rest @ ..] => Ok(Arg::Str(String::from_utf8_lossy(rest).into_owned())),
            [b'j', b':', rest @ ..] => serde_json::from_slice(rest)
                .map(Arg::Json)
                .map_err(|e| AmpError::BadJson(e.to_string())),
            other => Ok(Arg::Raw(other.to_vec())),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Arg::Str(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AmpError {
    #[error("AMP version {0} (only version 1 is spoken)")]
    Version(u8),
    #[error("an AMP message without arguments")]
    NoArgs,
    #[error("an AMP message of {0} bytes or more exceeds the {1}-byte limit")]
    TooLong(usize, usize),
    #[error("a j: argument that is not JSON: {0}")]
    BadJson(String),
}

/// The bytes of one argument as it goes on the wire, for [`encode_raw`].
pub fn str_arg(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 2);
    v.extend_from_slice(b"s:");
    v.extend_from_slice(s.as_bytes());
    v
}

pub fn json_arg(v: &Value) -> Vec<u8> {
    let mut out = b"j:".to_vec();
    // A Value always serializes.
    serde_json::to_writer(&mut out, v).expect("JSON of a Value");
    out
}

/// A message of already-typed arguments (each `s:…`, `j:…` or raw), with its header.
pub fn encode_raw(args: &[&[u8]]) -> Vec<u8> {
    debug_assert!((1..16).contains(&args.len()));
    let len = 1 + args.iter().map(|a| 4 + a.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.push(VERSION << 4 | args.len() as u8);
    for a in args {
        out.extend_from_slice(&(a.len() as u32).to_be_bytes());
        out.extend_from_slice(a);
    }
    out
}

pub fn encode(args: &[Arg]) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = args
        .iter()
        .map(|a| match a {
            Arg::Str(s) => str_arg(s),
            Arg::Json(v) => json_arg(v),
            Arg::Raw(b) => b.clone(),
        })
        .collect();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    encode_raw(&refs)
}

/// The length of the first whole message in `buf`, `None` if more bytes are needed. The header
/// is checked as soon as it is there, the total as soon as each length is: a peer cannot make
/// the reader buffer more than [`MAX_FRAME`] bytes.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, AmpError> {
    frame_len_within(buf, MAX_FRAME)
}

/// [`frame_len`] with a lower bound than [`MAX_FRAME`] (what a reader takes from a peer).
pub fn frame_len_within(buf: &[u8], max: usize) -> Result<Option<usize>, AmpError> {
    let Some(&head) = buf.first() else {
        return Ok(None);
    };
    check_header(head)?;
    let argc = (head & 0xf) as usize;
    let mut off = 1usize;
    for _ in 0..argc {
        let Some(len) = buf.get(off..off + 4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        off = off.saturating_add(4).saturating_add(len);
        if off > max {
            return Err(AmpError::TooLong(off, max));
        }
    }
    Ok((buf.len() >= off).then_some(off))
}

/// The header byte's checks: version 1, at least one argument.
pub fn check_header(head: u8) -> Result<(), AmpError> {
    if head >> 4 != VERSION {
        return Err(AmpError::Version(head >> 4));
    }
    if head & 0xf == 0 {
        return Err(AmpError::NoArgs);
    }
    Ok(())
}

/// One whole message (as [`frame_len`] delimits it) → its arguments.
pub fn decode(frame: &[u8]) -> Result<Vec<Arg>, AmpError> {
    let head = *frame.first().ok_or(AmpError::NoArgs)?;
    check_header(head)?;
    let argc = (head & 0xf) as usize;
    let mut args = Vec::with_capacity(argc);
    let mut off = 1usize;
    for _ in 0..argc {
        let len = frame
            .get(off..off + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or(AmpError::TooLong(frame.len(), frame.len()))?;
        off += 4;
        let bytes = frame
            .get(off..off + len)
            .ok_or(AmpError::TooLong(off + len, frame.len()))?;
        args.push(Arg::parse(bytes)?);
        off += len;
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn as_amp_message_encodes() {
        // `new Message([{type:'call'}, 'id:1']).toBuffer()` in Node, byte for byte.
        let m = encode(&[Arg::Json(json!({"type": "call"})), Arg::Str("id:1".into())]);
        let mut want = vec![0x12, 0, 0, 0, 17];
        want.extend_from_slice(b"j:{\"type\":\"call\"}");
        want.extend_from_slice(&[0, 0, 0, 6]);
        want.extend_from_slice(b"s:id:1");
        assert_eq!(m, want);
        assert_eq!(frame_len(&m), Ok(Some(m.len())));
        assert_eq!(
            decode(&m).unwrap(),
            vec![Arg::Json(json!({"type": "call"})), Arg::Str("id:1".into())]
        );
    }

    #[test]
    fn partial_messages_wait_for_more() {
        let m = encode(&[Arg::Str("x".into()), Arg::Raw(b"raw".to_vec())]);
        for cut in 0..m.len() {
            assert_eq!(frame_len(&m[..cut]), Ok(None), "cut at {cut}");
        }
        let mut two = m.clone();
        two.extend_from_slice(&m);
        assert_eq!(frame_len(&two), Ok(Some(m.len())));
        assert_eq!(decode(&m).unwrap()[1], Arg::Raw(b"raw".to_vec()));
    }

    #[test]
    fn bad_headers_lengths_and_json_are_errors() {
        assert_eq!(frame_len(&[0x21, 0, 0, 0, 0]), Err(AmpError::Version(2)));
        assert_eq!(frame_len(&[0x10]), Err(AmpError::NoArgs));
        assert_eq!(
            frame_len(&[0x11, 0xff, 0xff, 0xff, 0xff]),
            Err(AmpError::TooLong(5 + 0xffff_ffff, MAX_FRAME))
        );
        assert_eq!(
            frame_len_within(&[0x11, 0, 0, 4, 0], 1024),
            Err(AmpError::TooLong(5 + 1024, 1024))
        );
        let bad = encode_raw(&[b"j:{nope"]);
        assert!(matches!(decode(&bad), Err(AmpError::BadJson(_))));
        // Our own frames start with a zero byte (a length under 16 MiB): never taken for AMP.
        assert_eq!(frame_len(&[0, 0, 0, 2]), Err(AmpError::Version(0)));
    }
}
