//! RADIUS wire details the `radius` crate's codec does not cover.
//!
//! The crate decodes and encodes packets and computes the Response
//! Authenticator, but it offers no walk over all attributes in their order,
//! no Message-Authenticator (RFC 3579 §3.2) computation or check, and its
//! User-Password decoder stops at the first NUL instead of removing only the
//! trailing padding (RFC 2865 §5.2). Those parts are here, by hand, on raw
//! bytes; everything else goes through [`radius::core::packet::Packet`].

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use radius::core::avp::AVP;
use radius::core::code::Code;
use radius::core::packet::Packet;
use subtle::ConstantTimeEq;

use crate::Error;

/// Length of the RADIUS header: Code, Identifier, Length, Authenticator (octets).
pub const HEADER_LEN: usize = 20;
/// Largest RADIUS packet (RFC 2865 §3), in octets.
pub const MAX_PACKET_LEN: usize = 4096;
/// Largest attribute value (RFC 2865 §5), in octets.
pub const MAX_ATTR_VALUE: usize = 253;

/// Attribute types used here (RFC 2865 §5, RFC 2869 §5, RFC 3579 §3).
pub mod attr {
    /// User-Name (RFC 2865 §5.1).
    pub const USER_NAME: u8 = 1;
    /// User-Password (RFC 2865 §5.2).
    pub const USER_PASSWORD: u8 = 2;
    /// CHAP-Password (RFC 2865 §5.3).
    pub const CHAP_PASSWORD: u8 = 3;
    /// NAS-IP-Address (RFC 2865 §5.4).
    pub const NAS_IP_ADDRESS: u8 = 4;
    /// NAS-Port (RFC 2865 §5.5).
    pub const NAS_PORT: u8 = 5;
    /// Service-Type (RFC 2865 §5.6).
    pub const SERVICE_TYPE: u8 = 6;
    /// Reply-Message (RFC 2865 §5.18).
    pub const REPLY_MESSAGE: u8 = 18;
    /// State (RFC 2865 §5.24).
    pub const STATE: u8 = 24;
    /// Class (RFC 2865 §5.25).
    pub const CLASS: u8 = 25;
    /// Session-Timeout (RFC 2865 §5.27).
    pub const SESSION_TIMEOUT: u8 = 27;
    /// Called-Station-Id (RFC 2865 §5.30).
    pub const CALLED_STATION_ID: u8 = 30;
    /// Calling-Station-Id (RFC 2865 §5.31).
    pub const CALLING_STATION_ID: u8 = 31;
    /// NAS-Identifier (RFC 2865 §5.32).
    pub const NAS_IDENTIFIER: u8 = 32;
    /// Proxy-State (RFC 2865 §5.33).
    pub const PROXY_STATE: u8 = 33;
    /// NAS-Port-Type (RFC 2865 §5.41).
    pub const NAS_PORT_TYPE: u8 = 61;
    /// EAP-Message (RFC 3579 §3.1).
    pub const EAP_MESSAGE: u8 = 79;
    /// Message-Authenticator (RFC 3579 §3.2).
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
    /// NAS-IPv6-Address (RFC 3162 §2.1).
    pub const NAS_IPV6_ADDRESS: u8 = 95;
}

/// Packet codes (RFC 2865 §3, RFC 5997).
pub mod code {
    /// Access-Request.
    pub const ACCESS_REQUEST: u8 = 1;
    /// Access-Accept.
    pub const ACCESS_ACCEPT: u8 = 2;
    /// Access-Reject.
    pub const ACCESS_REJECT: u8 = 3;
    /// Access-Challenge.
    pub const ACCESS_CHALLENGE: u8 = 11;
    /// Status-Server (RFC 5997).
    pub const STATUS_SERVER: u8 = 12;
}

/// One attribute as it appears on the wire: type and value (0 to 253 octets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAttr {
    /// Attribute type.
    pub typ: u8,
    /// Attribute value.
    pub value: Vec<u8>,
}

/// A structurally valid packet: header fields and attributes in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPacket {
    /// Code (1 Access-Request, 12 Status-Server, ...).
    pub code: u8,
    /// Identifier.
    pub identifier: u8,
    /// Request or Response Authenticator (16 octets).
    pub authenticator: [u8; 16],
    /// Attributes in the order received.
    pub attrs: Vec<RawAttr>,
    /// The packet's bytes up to its Length field (padding beyond it dropped).
    pub bytes: Vec<u8>,
}

impl RawPacket {
    /// The first value of attribute `typ`.
    pub fn first(&self, typ: u8) -> Option<&[u8]> {
        self.attrs
            .iter()
            .find(|a| a.typ == typ)
            .map(|a| a.value.as_slice())
    }

    /// Every value of attribute `typ`, in order.
    pub fn all(&self, typ: u8) -> impl Iterator<Item = &[u8]> {
        self.attrs
            .iter()
            .filter(move |a| a.typ == typ)
            .map(|a| a.value.as_slice())
    }

    /// How many attributes of type `typ` the packet has.
    pub fn count(&self, typ: u8) -> usize {
        self.attrs.iter().filter(|a| a.typ == typ).count()
    }
}

/// Parses the header and walks the attributes (RFC 2865 §3, §5).
///
/// Octets beyond the Length field are padding and ignored (RFC 2865 §3). The
/// packet is then decoded once more by the `radius` crate, so both agree on
/// what is well formed.
///
/// # Errors
/// [`Error::Malformed`] with the reason: shorter than 20 octets, Length below
/// 20, above 4096 or beyond the datagram, an attribute of length 0 or 1 or
/// running past the end.
pub fn parse(datagram: &[u8]) -> Result<RawPacket, Error> {
    if datagram.len() < HEADER_LEN {
        return Err(Error::Malformed(format!(
            "{} octets, shorter than the 20-octet header",
            datagram.len()
        )));
    }
    let len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&len) {
        return Err(Error::Malformed(format!(
            "Length field {len} outside 20..=4096"
        )));
    }
    if len > datagram.len() {
        return Err(Error::Malformed(format!(
            "Length field {len} exceeds the {} octets received",
            datagram.len()
        )));
    }
    let bytes = &datagram[..len];
    let mut attrs = Vec::new();
    let mut i = HEADER_LEN;
    while i < len {
        if len - i < 2 {
            return Err(Error::Malformed(format!(
                "truncated attribute at offset {i}"
            )));
        }
        let alen = usize::from(bytes[i + 1]);
        if alen < 2 {
            return Err(Error::Malformed(format!(
                "attribute {} at offset {i} has length {alen}",
                bytes[i]
            )));
        }
        if i + alen > len {
            return Err(Error::Malformed(format!(
                "attribute {} at offset {i} runs past the end of the packet",
                bytes[i]
            )));
        }
        attrs.push(RawAttr {
            typ: bytes[i],
            value: bytes[i + 2..i + alen].to_vec(),
        });
        i += alen;
    }
    // The crate's decoder must agree; it is the codec the rest relies on.
    Packet::decode(bytes, b"-").map_err(|e| Error::Malformed(e.to_string()))?;
    let mut authenticator = [0u8; 16];
    authenticator.copy_from_slice(&bytes[4..HEADER_LEN]);
    Ok(RawPacket {
        code: bytes[0],
        identifier: bytes[1],
        authenticator,
        attrs,
        bytes: bytes.to_vec(),
    })
}

/// Offset of the value of the only Message-Authenticator in `bytes`, if any.
fn message_authenticator_offset(bytes: &[u8]) -> Result<Option<usize>, Error> {
    let mut found = None;
    let mut i = HEADER_LEN;
    while i + 2 <= bytes.len() {
        let alen = usize::from(bytes[i + 1]);
        if alen < 2 || i + alen > bytes.len() {
            return Err(Error::Malformed("attribute list is broken".into()));
        }
        if bytes[i] == attr::MESSAGE_AUTHENTICATOR {
            if alen != 18 {
                return Err(Error::Malformed(format!(
                    "Message-Authenticator of length {alen}, must be 18"
                )));
            }
            if found.is_some() {
                return Err(Error::Malformed(
                    "more than one Message-Authenticator".into(),
                ));
            }
            found = Some(i + 2);
        }
        i += alen;
    }
    Ok(found)
}

/// HMAC-MD5 over `bytes` with the Message-Authenticator value at `ma` zeroed
/// and `authenticator` in the header (RFC 3579 §3.2).
fn hmac_md5(bytes: &[u8], ma: usize, authenticator: &[u8; 16], secret: &[u8]) -> [u8; 16] {
    let mut mac = Hmac::<Md5>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(&bytes[..4]);
    mac.update(authenticator);
    mac.update(&bytes[HEADER_LEN..ma]);
    mac.update(&[0u8; 16]);
    mac.update(&bytes[ma + 16..]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// Whether a Message-Authenticator was found and was right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAuth {
    /// The packet carries no Message-Authenticator.
    Absent,
    /// Present and correct.
    Valid,
}

/// Checks the Message-Authenticator of a request (Access-Request,
/// Status-Server): HMAC-MD5 keyed with the shared secret over the packet
/// with the attribute's value zeroed, compared in constant time
/// (RFC 3579 §3.2).
///
/// # Errors
/// [`Error::BadMessageAuthenticator`] when it is present but wrong,
/// [`Error::Malformed`] when it is duplicated or of the wrong length.
pub fn check_request_message_authenticator(
    bytes: &[u8],
    secret: &[u8],
) -> Result<MessageAuth, Error> {
    let Some(ma) = message_authenticator_offset(bytes)? else {
        return Ok(MessageAuth::Absent);
    };
    let mut auth = [0u8; 16];
    auth.copy_from_slice(&bytes[4..HEADER_LEN]);
    let expected = hmac_md5(bytes, ma, &auth, secret);
    if bool::from(expected.ct_eq(&bytes[ma..ma + 16])) {
        Ok(MessageAuth::Valid)
    } else {
        Err(Error::BadMessageAuthenticator)
    }
}

/// Checks a response from an upstream server: the Response Authenticator
/// (RFC 2865 §3) and, when present, the Message-Authenticator computed with
/// the Request Authenticator of our request (RFC 3579 §3.2). Both compared
/// in constant time.
///
/// # Errors
/// [`Error::BadResponseAuthenticator`], [`Error::BadMessageAuthenticator`]
/// or [`Error::Malformed`].
pub fn check_response(
    bytes: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<MessageAuth, Error> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::Malformed("short response".into()));
    }
    let mut md5 = Md5::new();
    md5.update(&bytes[..4]);
    md5.update(request_authenticator);
    md5.update(&bytes[HEADER_LEN..]);
    md5.update(secret);
    let digest = md5.finalize();
    if !bool::from(digest.as_slice().ct_eq(&bytes[4..HEADER_LEN])) {
        return Err(Error::BadResponseAuthenticator);
    }
    let Some(ma) = message_authenticator_offset(bytes)? else {
        return Ok(MessageAuth::Absent);
    };
    let expected = hmac_md5(bytes, ma, request_authenticator, secret);
    if bool::from(expected.ct_eq(&bytes[ma..ma + 16])) {
        Ok(MessageAuth::Valid)
    } else {
        Err(Error::BadMessageAuthenticator)
    }
}

/// Decodes a User-Password value (RFC 2865 §5.2): `b1 = MD5(S + RA)`,
/// `p1 = c1 xor b1`, `bi = MD5(S + c(i-1))`; trailing NULs (the padding) are
/// removed, inner NULs kept.
///
/// # Errors
/// [`Error::Malformed`] when the value is not 16 to 128 octets in multiples of 16.
pub fn decode_user_password(
    value: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
    if value.len() < 16 || value.len() > 128 || value.len() % 16 != 0 {
        return Err(Error::Malformed(format!(
            "User-Password of {} octets (must be 16..=128, a multiple of 16)",
            value.len()
        )));
    }
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(value.len()));
    let mut prev: &[u8] = request_authenticator;
    for chunk in value.chunks(16) {
        let mut md5 = Md5::new();
        md5.update(secret);
        md5.update(prev);
        let b = md5.finalize();
        out.extend(chunk.iter().zip(b.iter()).map(|(c, b)| c ^ b));
        prev = chunk;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Ok(out)
}

/// Builds a reply to `request` (Access-Accept, -Reject or -Challenge, or an
/// answer to Status-Server): Message-Authenticator first (CVE-2024-3596,
/// RFC 3579 §3.2), then `attrs` in order, then the request's Proxy-State
/// attributes in their order (RFC 2865 §5.33). The crate's codec computes
/// the Response Authenticator.
///
/// # Errors
/// [`Error::Encode`] when an attribute is too long or the packet exceeds 4096 octets.
pub fn build_reply(
    request: &RawPacket,
    reply_code: u8,
    attrs: &[RawAttr],
    secret: &[u8],
) -> Result<Vec<u8>, Error> {
    let code = Code::from(reply_code);
    let proxy_states: Vec<&[u8]> = request.all(attr::PROXY_STATE).collect();
    let assemble = |ma: &[u8]| -> Result<Vec<u8>, Error> {
        // make_response_packet keeps the Identifier and the Request
        // Authenticator that the Response Authenticator (RFC 2865 §3) is
        // computed over.
        let mut p = Packet::decode(&request.bytes, secret)
            .map_err(|e| Error::Encode(e.to_string()))?
            .make_response_packet(code);
        p.add(AVP::from_bytes(attr::MESSAGE_AUTHENTICATOR, ma));
        for a in attrs {
            p.add(AVP::from_bytes(a.typ, &a.value));
        }
        for ps in &proxy_states {
            p.add(AVP::from_bytes(attr::PROXY_STATE, ps));
        }
        p.encode().map_err(|e| Error::Encode(e.to_string()))
    };
    // First pass with a zero Message-Authenticator gives the layout; the
    // HMAC is computed over it with the Request Authenticator in the header,
    // then the packet is encoded again with the real value.
    let draft = assemble(&[0u8; 16])?;
    let mac = hmac_md5(&draft, HEADER_LEN + 2, &request.authenticator, secret);
    assemble(&mac)
}

/// Builds an Access-Request for an upstream server with a fresh random
/// Request Authenticator: Message-Authenticator first, then `attrs`, then
/// User-Password hidden with `secret` (RFC 2865 §5.2, via the crate).
///
/// Returns the bytes and the Request Authenticator.
///
/// # Errors
/// [`Error::Encode`] for a password over 128 octets or an oversized packet.
pub fn build_access_request(
    identifier: u8,
    attrs: &[RawAttr],
    password: &[u8],
    secret: &[u8],
) -> Result<(Vec<u8>, [u8; 16]), Error> {
    let base = Packet::new_with_identifier(Code::AccessRequest, secret, identifier);
    let mut ra = [0u8; 16];
    ra.copy_from_slice(base.get_authenticator());
    let pw = AVP::from_user_password(attr::USER_PASSWORD, password, secret, &ra)
        .map_err(|e| Error::Encode(e.to_string()))?;
    let assemble = |ma: &[u8]| -> Result<Vec<u8>, Error> {
        let mut p = base.clone();
        p.add(AVP::from_bytes(attr::MESSAGE_AUTHENTICATOR, ma));
        for a in attrs {
            p.add(AVP::from_bytes(a.typ, &a.value));
        }
        p.add(pw.clone());
        p.encode().map_err(|e| Error::Encode(e.to_string()))
    };
    let draft = assemble(&[0u8; 16])?;
    let mac = hmac_md5(&draft, HEADER_LEN + 2, &ra, secret);
    Ok((assemble(&mac)?, ra))
}

/// Splits `text` into Reply-Message attributes of at most 253 octets each,
/// never inside a UTF-8 character (RFC 2865 §5.18: several Reply-Messages
/// are shown concatenated).
pub fn reply_messages(text: &str) -> Vec<RawAttr> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_ATTR_VALUE);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(RawAttr {
            typ: attr::REPLY_MESSAGE,
            value: rest.as_bytes()[..cut].to_vec(),
        });
        rest = &rest[cut..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2865 §7.1: Access-Request from NAS 192.168.1.16 for user nemo,
    /// password "arctangent", shared secret "xyzzy5461".
    pub(crate) const RFC2865_7_1_REQUEST: [u8; 56] = [
        0x01, 0x00, 0x00, 0x38, 0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5,
        0xcb, 0x98, 0xf4, 0x22, 0x7a, 0x01, 0x06, 0x6e, 0x65, 0x6d, 0x6f, 0x02, 0x12, 0x0d, 0xbe,
        0x70, 0x8d, 0x93, 0xd4, 0x13, 0xce, 0x31, 0x96, 0xe4, 0x3f, 0x78, 0x2a, 0x0a, 0xee, 0x04,
        0x06, 0xc0, 0xa8, 0x01, 0x10, 0x05, 0x06, 0x00, 0x00, 0x00, 0x03,
    ];
    /// RFC 2865 §7.1: the Access-Accept (Service-Type Login, Login-Service
    /// Telnet, Login-IP-Host 192.168.1.3).
    const RFC2865_7_1_ACCEPT: [u8; 38] = [
        0x02, 0x00, 0x00, 0x26, 0x86, 0xfe, 0x22, 0x0e, 0x76, 0x24, 0xba, 0x2a, 0x10, 0x05, 0xf6,
        0xbf, 0x9b, 0x55, 0xe0, 0xb2, 0x06, 0x06, 0x00, 0x00, 0x00, 0x01, 0x0f, 0x06, 0x00, 0x00,
        0x00, 0x00, 0x0e, 0x06, 0xc0, 0xa8, 0x01, 0x03,
    ];
    const SECRET: &[u8] = b"xyzzy5461";

    #[test]
    fn rfc2865_7_1_parses_and_password_decodes() {
        let p = parse(&RFC2865_7_1_REQUEST).unwrap();
        assert_eq!(p.code, code::ACCESS_REQUEST);
        assert_eq!(p.identifier, 0);
        assert_eq!(p.first(attr::USER_NAME), Some(&b"nemo"[..]));
        assert_eq!(p.first(attr::NAS_IP_ADDRESS), Some(&[192, 168, 1, 16][..]));
        let pw = decode_user_password(
            p.first(attr::USER_PASSWORD).unwrap(),
            SECRET,
            &p.authenticator,
        )
        .unwrap();
        assert_eq!(pw.as_slice(), b"arctangent");
        // The wrong secret gives garbage, not the password.
        let wrong = decode_user_password(
            p.first(attr::USER_PASSWORD).unwrap(),
            b"other",
            &p.authenticator,
        )
        .unwrap();
        assert_ne!(wrong.as_slice(), b"arctangent");
        assert_eq!(
            check_request_message_authenticator(&p.bytes, SECRET).unwrap(),
            MessageAuth::Absent
        );
    }

    #[test]
    fn rfc2865_7_1_response_authenticator_checks() {
        let req = parse(&RFC2865_7_1_REQUEST).unwrap();
        assert_eq!(
            check_response(&RFC2865_7_1_ACCEPT, &req.authenticator, SECRET).unwrap(),
            MessageAuth::Absent
        );
        assert!(matches!(
            check_response(&RFC2865_7_1_ACCEPT, &req.authenticator, b"wrong"),
            Err(Error::BadResponseAuthenticator)
        ));
    }

    #[test]
    fn password_padding_and_inner_nul() {
        let ra = [7u8; 16];
        for pw in [
            &b"a"[..],
            b"0123456789abcdef",
            b"pass\0word,123456",
            &[b'x'; 128][..],
        ] {
            let (bytes, ra2) = build_access_request(9, &[], pw, SECRET).unwrap();
            let p = parse(&bytes).unwrap();
            let got =
                decode_user_password(p.first(attr::USER_PASSWORD).unwrap(), SECRET, &ra2).unwrap();
            assert_eq!(got.as_slice(), pw);
        }
        assert!(decode_user_password(&[0u8; 15], SECRET, &ra).is_err());
        assert!(decode_user_password(&[0u8; 17], SECRET, &ra).is_err());
        assert!(decode_user_password(&[0u8; 144], SECRET, &ra).is_err());
    }

    #[test]
    fn reply_has_message_authenticator_first_and_proxy_state_in_order() {
        let mut req = parse(&RFC2865_7_1_REQUEST).unwrap();
        // Add two Proxy-States to the request by rebuilding it.
        let mut bytes = req.bytes.clone();
        bytes.extend([attr::PROXY_STATE, 5, b'o', b'n', b'e']);
        bytes.extend([attr::PROXY_STATE, 5, b't', b'w', b'o']);
        let len = bytes.len() as u16;
        bytes[2..4].copy_from_slice(&len.to_be_bytes());
        req = parse(&bytes).unwrap();
        let reply = build_reply(
            &req,
            code::ACCESS_ACCEPT,
            &reply_messages("welcome"),
            SECRET,
        )
        .unwrap();
        let r = parse(&reply).unwrap();
        assert_eq!(r.code, code::ACCESS_ACCEPT);
        assert_eq!(r.identifier, req.identifier);
        assert_eq!(r.attrs[0].typ, attr::MESSAGE_AUTHENTICATOR);
        assert_eq!(r.first(attr::REPLY_MESSAGE), Some(&b"welcome"[..]));
        let ps: Vec<&[u8]> = r.all(attr::PROXY_STATE).collect();
        assert_eq!(ps, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(
            check_response(&reply, &req.authenticator, SECRET).unwrap(),
            MessageAuth::Valid
        );
        // Any flipped bit breaks it.
        let mut bad = reply.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(check_response(&bad, &req.authenticator, SECRET).is_err());
    }

    #[test]
    fn request_message_authenticator_is_checked() {
        let attrs = [RawAttr {
            typ: attr::USER_NAME,
            value: b"alice".to_vec(),
        }];
        let (bytes, _) = build_access_request(3, &attrs, b"123456", SECRET).unwrap();
        assert_eq!(
            check_request_message_authenticator(&bytes, SECRET).unwrap(),
            MessageAuth::Valid
        );
        assert!(matches!(
            check_request_message_authenticator(&bytes, b"other"),
            Err(Error::BadMessageAuthenticator)
        ));
        let mut tampered = bytes.clone();
        tampered[HEADER_LEN + 18 + 2] ^= 0x20; // first octet of User-Name
        assert!(check_request_message_authenticator(&tampered, SECRET).is_err());
    }

    /// RFC 3579 §3.2 by an independent route: the HMAC computed with the
    /// attribute zeroed, by hand with the crate's packet bytes.
    #[test]
    fn message_authenticator_matches_plain_hmac() {
        let (bytes, _) = build_access_request(1, &[], b"x", SECRET).unwrap();
        let mut zeroed = bytes.clone();
        zeroed[HEADER_LEN + 2..HEADER_LEN + 18].fill(0);
        let mut mac = Hmac::<Md5>::new_from_slice(SECRET).unwrap();
        mac.update(&zeroed);
        assert_eq!(
            mac.finalize().into_bytes().as_slice(),
            &bytes[HEADER_LEN + 2..HEADER_LEN + 18]
        );
    }

    #[test]
    fn reply_message_split() {
        assert!(reply_messages("").is_empty());
        let long = "é".repeat(300); // 600 octets, 2 per char
        let parts = reply_messages(&long);
        assert!(parts.iter().all(|a| a.value.len() <= 253));
        let joined: Vec<u8> = parts.iter().flat_map(|a| a.value.clone()).collect();
        assert_eq!(joined, long.as_bytes());
        assert_eq!(parts.len(), 3);
        assert_eq!(reply_messages(&"a".repeat(253)).len(), 1);
        assert_eq!(reply_messages(&"a".repeat(254)).len(), 2);
    }

    #[test]
    fn malformed_is_refused() {
        assert!(parse(&[1, 2, 3]).is_err());
        let mut p = RFC2865_7_1_REQUEST.to_vec();
        p[3] = 19;
        assert!(parse(&p).is_err());
        let mut p = RFC2865_7_1_REQUEST.to_vec();
        p[3] = 57;
        assert!(parse(&p).is_err());
        let mut p = RFC2865_7_1_REQUEST.to_vec();
        p[21] = 1; // User-Name length 1
        assert!(parse(&p).is_err());
        let mut p = RFC2865_7_1_REQUEST.to_vec();
        p[21] = 0;
        assert!(parse(&p).is_err());
        // Padding after Length is ignored.
        let mut p = RFC2865_7_1_REQUEST.to_vec();
        p.extend([0xff; 10]);
        assert_eq!(parse(&p).unwrap().bytes, RFC2865_7_1_REQUEST.to_vec());
    }
}
