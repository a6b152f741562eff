//! Random mutation of a valid frame: bit flips, bytes and 16-bit words set
//! to boundary values, truncation, insertion and deletion, one to four at a
//! time, three in four aimed at the first 80 bytes (the headers).

use super::{
    dice::Dice,
    generate::{MAX_FRAME, MIN_FRAME},
};

const HEADER_BYTES: usize = 80;

/// Mutates `frame` in place; it stays between [`MIN_FRAME`] and
/// [`MAX_FRAME`] bytes.
pub fn mutate(d: &mut Dice, frame: &mut Vec<u8>) {
    for _ in 0..d.range(1, 4) {
        let len = frame.len();
        if len == 0 {
            break;
        }
        let pos = if d.chance(3, 4) {
            d.below(len.min(HEADER_BYTES))
        } else {
            d.below(len)
        };
        match d.below(8) {
            0 | 1 => frame[pos] ^= 1 << d.below(8),
            2 | 3 => frame[pos] = d.pick_or(&[0, 1, 0x7f, 0x80, 0xff], Dice::byte),
            4 if pos + 1 < len => {
                let v: u16 = d.pick_or(&[0, 1, 0x7fff, 0x8000, 0xffff], Dice::u16);
                frame[pos..pos + 2].copy_from_slice(&v.to_be_bytes());
            }
            5 if len > MIN_FRAME => frame.truncate(d.range(MIN_FRAME, len - 1)),
            6 => {
                for _ in 0..d.range(1, 8) {
                    frame.insert(pos, d.byte());
                }
            }
            7 => {
                let n = d.range(1, 8).min(len - pos);
                frame.drain(pos..pos + n);
            }
            _ => frame[pos] = !frame[pos],
        }
    }
    if frame.len() < MIN_FRAME {
        frame.resize(MIN_FRAME, 0);
    }
    frame.truncate(MAX_FRAME);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutated_frames_stay_in_bounds_and_change() {
        let mut d = Dice::new(3);
        let original: Vec<u8> = (0..100).map(|i| i as u8).collect();
        let mut changed = 0;
        for _ in 0..1000 {
            let mut f = original.clone();
            mutate(&mut d, &mut f);
            assert!((MIN_FRAME..=MAX_FRAME).contains(&f.len()));
            changed += usize::from(f != original);
        }
        // A flip can be undone by a second one; nearly all must differ.
        assert!(changed > 950, "{changed}");
    }
}
