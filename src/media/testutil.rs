//! Test helpers: deterministic images in each format, and a store in a
//! temporary directory.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::{Delay, DynamicImage, Frame, ImageEncoder, RgbImage, Rgba, RgbaImage};

use super::store::{MediaStore, StoreConfig};

/// A xorshift generator: the same numbers on every run.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A photo-like picture: smooth gradients, a disc, and per-pixel noise of
/// `noise` levels (0: none).
pub(crate) fn picture(w: u32, h: u32, noise: u8, seed: u64) -> RgbImage {
    let mut rng = Rng::new(seed);
    let (cx, cy, r) = (w as f64 * 0.6, h as f64 * 0.45, w.min(h) as f64 * 0.3);
    RgbImage::from_fn(w, h, |x, y| {
        let fx = x as f64 / w as f64;
        let fy = y as f64 / h as f64;
        let inside = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt() < r;
        let base = if inside {
            [220.0, 60.0 + 80.0 * fy, 40.0]
        } else {
            [40.0 + 120.0 * fx, 90.0 + 100.0 * fy, 200.0 - 120.0 * fx]
        };
        let mut px = [0u8; 3];
        for (i, b) in base.iter().enumerate() {
            let n = if noise == 0 {
                0.0
            } else {
                (rng.next() % (u64::from(noise) * 2 + 1)) as f64 - f64::from(noise)
            };
            px[i] = (b + n).clamp(0.0, 255.0) as u8;
        }
        image::Rgb(px)
    })
}

pub(crate) fn png(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Default, PngFilter::Adaptive)
        .write_image(
            img.as_bytes(),
            img.width(),
            img.height(),
            img.color().into(),
        )
        .unwrap();
    out
}

pub(crate) fn jpeg(img: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .unwrap();
    out
}

/// An animated GIF: a disc moving across a noisy gradient, `frames` frames
/// of 100 ms, looping forever.
pub(crate) fn animated_gif(w: u32, h: u32, frames: u32, noise: u8) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut out, 10);
        enc.set_repeat(Repeat::Infinite).unwrap();
        for i in 0..frames {
            let bg = picture(w, h, noise, 7);
            let cx = (w * (i + 1)) / (frames + 1);
            let r = h / 5;
            let frame = RgbaImage::from_fn(w, h, |x, y| {
                let dx = x.abs_diff(cx);
                let dy = y.abs_diff(h / 2);
                if dx * dx + dy * dy < r * r {
                    Rgba([250, 250, 40, 255])
                } else {
                    let p = bg.get_pixel(x, y).0;
                    Rgba([p[0], p[1], p[2], 255])
                }
            });
            enc.encode_frame(Frame::from_parts(
                frame,
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            ))
            .unwrap();
        }
    }
    out
}

/// Frames of a GIF: (count, width, height, first delay in ms).
pub(crate) fn gif_frames(bytes: &[u8]) -> (usize, u32, u32, u32) {
    use image::AnimationDecoder;
    let d = image::codecs::gif::GifDecoder::new(Cursor::new(bytes)).unwrap();
    let frames: Vec<Frame> = d.into_frames().collect::<Result<_, _>>().unwrap();
    let (w, h) = frames[0].buffer().dimensions();
    let (n, d) = frames[0].delay().numer_denom_ms();
    (frames.len(), w, h, n / d.max(1))
}

/// A store in a fresh temporary directory (kept alive by the returned
/// guard).
pub(crate) fn store_with(f: impl FnOnce(&mut StoreConfig)) -> (tempfile::TempDir, Arc<MediaStore>) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path().join("media"));
    f(&mut cfg);
    let store = Arc::new(MediaStore::open(cfg).unwrap());
    (dir, store)
}

pub(crate) fn small_png() -> Bytes {
    Bytes::from(png(&DynamicImage::ImageRgb8(picture(8, 6, 0, 1))))
}

pub(crate) fn small_jpeg() -> Bytes {
    Bytes::from(jpeg(&DynamicImage::ImageRgb8(picture(8, 6, 0, 1)), 80))
}
