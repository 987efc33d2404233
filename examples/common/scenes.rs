//! Scenes the vision + language examples draw themselves (`caption_shapes`, `vqa_shapes`
//! include this file with `#[path]`): 32×32 RGB images with one to three coloured shapes,
//! each in its own third of the image (left, middle, right), shifted at random by up to
//! one pixel up or down and sideways.
//!
//! A scene's content is discrete (for each third: nothing, or a colour and a shape), so a
//! fixed fifth of the 999 possible contents ([`Scene::held_out`], by a hash) never appears
//! in training: evaluation is on combinations the model has not seen.

use recur::rng::Rng;

/// Side of the square image.
pub const SIDE: usize = 32;
/// Values per image: `3 * SIDE * SIDE`, channel-major (all red, then green, then blue).
pub const PIXELS: usize = 3 * SIDE * SIDE;
/// Colour names; colour `k` lights channel `k`.
pub const COLOURS: [&str; 3] = ["red", "green", "blue"];
/// Shape names.
pub const SHAPES: [&str; 3] = ["square", "circle", "triangle"];
/// Horizontal places (thirds of the image).
pub const SLOTS: usize = 3;

/// One shape in a scene.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Object {
    /// Index into [`COLOURS`].
    pub colour: usize,
    /// Index into [`SHAPES`].
    pub shape: usize,
}

/// A scene: what is in each third, left to right, and where exactly it is drawn.
#[derive(Clone, Debug)]
pub struct Scene {
    /// The content of each third.
    pub slots: [Option<Object>; SLOTS],
    /// Centre of each shape in pixels (x, y).
    centres: [(i32, i32); SLOTS],
}

fn pick(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

impl Scene {
    /// A random scene from the training part (`test` false) or the held-out part.
    pub fn random(rng: &mut Rng, test: bool) -> Scene {
        loop {
            let mut slots = [None; SLOTS];
            // One to three shapes, in distinct thirds.
            let count = 1 + pick(rng, SLOTS);
            let mut order = [0, 1, 2];
            for i in (1..SLOTS).rev() {
                order.swap(i, pick(rng, i + 1));
            }
            for &s in &order[..count] {
                slots[s] = Some(Object {
                    colour: pick(rng, COLOURS.len()),
                    shape: pick(rng, SHAPES.len()),
                });
            }
            let third = (SIDE / SLOTS) as i32;
            let mut centres = [(0, 0); SLOTS];
            for (s, c) in centres.iter_mut().enumerate() {
                let x = third * s as i32 + third / 2 + 1 + pick(rng, 3) as i32 - 1;
                let y = SIDE as i32 / 2 - 1 + pick(rng, 3) as i32;
                *c = (x, y);
            }
            let scene = Scene { slots, centres };
            if scene.held_out() == test {
                return scene;
            }
        }
    }

    /// The shapes left to right.
    pub fn objects(&self) -> Vec<Object> {
        self.slots.iter().flatten().copied().collect()
    }

    /// Whether this content is in the held-out fifth (an FNV hash of the slots).
    pub fn held_out(&self) -> bool {
        let code = self.slots.iter().fold(0u64, |acc, s| {
            let v = s.map_or(0, |o| 1 + o.colour * SHAPES.len() + o.shape);
            acc * 10 + v as u64
        });
        let h = code
            .to_le_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        h % 5 == 0
    }

    /// Whether pixel (x, y) is inside `shape` centred at (cx, cy) (radius 4).
    fn covers(shape: usize, (cx, cy): (i32, i32), x: i32, y: i32) -> bool {
        let (dx, dy) = (x - cx, y - cy);
        match shape {
            0 => dx.abs() <= 3 && dy.abs() <= 3,
            1 => dx * dx + dy * dy <= 16,
            // A triangle pointing up: apex at cy - 4, base at cy + 3.
            _ => (-4..=3).contains(&dy) && 2 * dx.abs() <= dy + 4,
        }
    }

    /// The image, channel-major, values 0 or 1 (see [`PIXELS`]).
    pub fn pixels(&self) -> Vec<f32> {
        let mut img = vec![0.0f32; PIXELS];
        for (s, obj) in self.slots.iter().enumerate() {
            let Some(o) = obj else { continue };
            for y in 0..SIDE as i32 {
                for x in 0..SIDE as i32 {
                    if Self::covers(o.shape, self.centres[s], x, y) {
                        img[o.colour * SIDE * SIDE + y as usize * SIDE + x as usize] = 1.0;
                    }
                }
            }
        }
        img
    }

    /// The image as text, one character a pixel (`R`, `G`, `B` or `.`), for the examples'
    /// printouts.
    pub fn ascii(&self) -> String {
        let img = self.pixels();
        let mut out = String::new();
        for y in (0..SIDE).step_by(2) {
            for x in 0..SIDE {
                let lit = (0..3).find(|&c| img[c * SIDE * SIDE + y * SIDE + x] > 0.0);
                out.push(lit.map_or('.', |c| ['R', 'G', 'B'][c]));
            }
            out.push('\n');
        }
        out
    }
}

/// `(1, B, PIXELS)` images of `scenes`, flat.
pub fn images(scenes: &[Scene]) -> Vec<f32> {
    scenes.iter().flat_map(Scene::pixels).collect()
}
