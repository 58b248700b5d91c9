//! The QR code of an `otpauth://` URI as an inline SVG element (no script,
//! no style attribute: allowed by the pages' Content-Security-Policy).

use qrcode::{Color, EcLevel, QrCode};

/// Modules of light border around the code (ISO/IEC 18004 asks for 4).
const QUIET_ZONE: usize = 4;

/// `<svg>` drawing `data` as a QR code (error correction level M), with
/// `label` as its accessible name; `None` when the data does not fit.
pub fn svg(data: &str, label: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET_ZONE;
    let mut path = String::with_capacity(colors.len() * 4);
    for (i, c) in colors.iter().enumerate() {
        if *c == Color::Dark {
            let (x, y) = (i % width + QUIET_ZONE, i / width + QUIET_ZONE);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    let label = label
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    Some(format!(
        "<svg class=\"qr\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         role=\"img\" aria-label=\"{label}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/>\
         <path fill=\"#000\" d=\"{path}\"/></svg>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_modules_and_escaped_label() {
        let s = svg("otpauth://totp/x:y?secret=AAAA", "QR <code>").unwrap();
        assert!(s.starts_with("<svg class=\"qr\""));
        assert!(s.contains("aria-label=\"QR &lt;code&gt;\""));
        assert!(s.contains("M4 4h1v1h-1z"), "finder pattern corner");
        assert!(!s.contains("style="));
    }
}
