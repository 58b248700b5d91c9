//! The QR code the pages show inline: [`twostep_common::qr::svg`], the
//! same drawing `twostep enrol --qr-svg` writes.

pub use twostep_common::qr::svg;
