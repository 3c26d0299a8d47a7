//! Pictures drawn here, deterministically, for the demo's sample resources, the tests and the
//! media benchmark: a building under a sky, in the colours of wood, stone or earth. No
//! photograph is shipped with the project.

use image::{Rgb, RgbImage};

/// A building drawn from `seed`, `width` × `height` pixels. `grain` (0–64) adds film-like
/// noise, which makes JPEGs as heavy as real photos (a few MB at 4,000 × 3,000).
pub fn drawing(seed: u64, width: u32, height: u32, grain: u8) -> RgbImage {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let palette: [[u8; 3]; 4] = [
        [176, 122, 72],  // douglas
        [168, 160, 146], // stone
        [196, 150, 104], // earth (pisé)
        [214, 190, 120], // straw
    ];
    let wall = palette[(next() % 4) as usize];
    let roof = [90 + (next() % 60) as u8, 60 + (next() % 30) as u8, 50];
    let (w, h) = (width as f32, height as f32);
    let horizon = h * (0.55 + (next() % 15) as f32 / 100.0);
    let bx0 = w * (0.15 + (next() % 20) as f32 / 100.0);
    let bx1 = w * (0.60 + (next() % 25) as f32 / 100.0);
    let wall_top = horizon - h * (0.18 + (next() % 12) as f32 / 100.0);
    let ridge = wall_top - h * (0.10 + (next() % 10) as f32 / 100.0);
    let columns = 3 + (next() % 4) as u32;
    let hill = (next() % 1000) as f32 / 1000.0 * std::f32::consts::TAU;
    let mut noise = next();
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let mid = (bx0 + bx1) / 2.0;
        let half = (bx1 - bx0) / 2.0 + w * 0.03;
        let roof_line = ridge + (fx - mid).abs() / half * (wall_top - ridge);
        let hills = horizon - h * 0.06 * (1.0 + (fx / w * 6.0 + hill).sin());
        let mut c = if fx >= bx0 && fx <= bx1 && fy >= wall_top && fy < horizon {
            // Windows: a grid of dark panes on the wall.
            let cell = (bx1 - bx0) / columns as f32;
            let in_x = ((fx - bx0) % cell) / cell;
            let in_y = ((fy - wall_top) / (horizon - wall_top) * 2.0) % 1.0;
            if (0.3..0.7).contains(&in_x) && (0.25..0.7).contains(&in_y) {
                [40, 52, 64]
            } else {
                wall
            }
        } else if (fx - mid).abs() <= half && fy >= roof_line && fy < wall_top {
            roof
        } else if fy >= horizon {
            let t = (fy - horizon) / (h - horizon);
            [(70.0 + 40.0 * t) as u8, (110.0 + 30.0 * t) as u8, 60]
        } else if fy >= hills {
            [96, 126, 88]
        } else {
            let t = fy / horizon;
            [(120.0 + 90.0 * t) as u8, (170.0 + 60.0 * t) as u8, 235]
        };
        if grain > 0 {
            for v in &mut c {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                let d = (noise % (2 * grain as u64 + 1)) as i16 - grain as i16;
                *v = (*v as i16 + d).clamp(0, 255) as u8;
            }
        }
        Rgb(c)
    })
}

/// [`drawing`] as a JPEG of the given quality.
pub fn jpeg(seed: u64, width: u32, height: u32, grain: u8, quality: u8) -> Vec<u8> {
    let img = drawing(seed, width, height, grain);
    let mut out = Vec::new();
    // Encoding an in-memory RGB buffer into a Vec cannot fail.
    let _ =
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(&img);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawings_are_deterministic_and_differ_by_seed() {
        assert_eq!(jpeg(7, 320, 240, 0, 80), jpeg(7, 320, 240, 0, 80));
        assert_ne!(jpeg(7, 320, 240, 0, 80), jpeg(8, 320, 240, 0, 80));
        let grainy = jpeg(7, 320, 240, 24, 92).len();
        assert!(
            grainy > jpeg(7, 320, 240, 0, 92).len(),
            "grain makes heavier files"
        );
    }
}
