//! QR codes of enrolment URIs (`otpauth://`, `twostep-activate://`) as
//! images: an SVG element (the Security info page shows it inline; `twostep
//! enrol --qr-svg`) and a PNG file (`twostep enrol --qr-png`). Both draw
//! the same modules, error correction level M, with the 4-module quiet
//! zone ISO/IEC 18004 asks for.

use qrcode::{Color, EcLevel, QrCode};

/// Modules of light border around the code (ISO/IEC 18004 asks for 4).
pub const QUIET_ZONE: usize = 4;

/// Pixels per module in [`png`] images.
pub const PNG_SCALE: usize = 8;

/// The dark modules of `data`'s QR code, as `(width in modules, colours
/// row by row)`; `None` when the data does not fit in a QR code.
fn modules(data: &str) -> Option<(usize, Vec<Color>)> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).ok()?;
    Some((code.width(), code.to_colors()))
}

/// An `<svg>` element drawing `data` as a QR code, with `label` as its
/// accessible name (escaped); no script, no style attribute (allowed by the
/// pages' Content-Security-Policy). `None` when the data does not fit.
pub fn svg(data: &str, label: &str) -> Option<String> {
    let (width, colors) = modules(data)?;
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

/// `data` as a QR code in a PNG file's bytes: 8-bit greyscale,
/// [`PNG_SCALE`] pixels per module, black on white. `None` when the data
/// does not fit.
pub fn png(data: &str) -> Option<Vec<u8>> {
    let (width, colors) = modules(data)?;
    let side = (width + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c == Color::Dark {
            let (mx, my) = (i % width + QUIET_ZONE, i / width + QUIET_ZONE);
            for y in my * PNG_SCALE..(my + 1) * PNG_SCALE {
                pixels[y * side + mx * PNG_SCALE..y * side + (mx + 1) * PNG_SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let side32 = u32::try_from(side).ok()?;
    let mut enc = png::Encoder::new(&mut out, side32, side32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().ok()?;
    w.write_image_data(&pixels).ok()?;
    w.finish().ok()?;
    Some(out)
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

    #[test]
    fn png_is_a_png_of_the_right_size_with_a_finder_corner() {
        let data = "otpauth://totp/x:y?secret=AAAA";
        let bytes = png(data).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let dec = png::Decoder::new(std::io::Cursor::new(&bytes));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let (w, _) = modules(data).unwrap();
        let side = (w + 2 * QUIET_ZONE) * PNG_SCALE;
        assert_eq!((info.width as usize, info.height as usize), (side, side));
        // Quiet zone white, the finder pattern's corner module black.
        assert_eq!(buf[0], 255);
        let corner = QUIET_ZONE * PNG_SCALE;
        assert_eq!(buf[corner * side + corner], 0);
    }

    #[test]
    fn too_long_data_is_none() {
        let long = "x".repeat(5000);
        assert!(svg(&long, "x").is_none() && png(&long).is_none());
    }
}
