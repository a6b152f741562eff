//! What a fuzzing run found: counts per verdict, action and frame origin,
//! speed, every violation counted by category, and the shortest few frames
//! of each category kept in full (frame bytes, result, expectation) for
//! printing: short frames make the clearest reproductions.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use lb_common::Verdict;

use super::{
    generate::Origin,
    oracle::{judge::action_name, Problem},
};

/// Examples kept per category: the shortest frames (the rest are only
/// counted).
const EXAMPLES_PER_CATEGORY: usize = 2;
/// XDP actions 0..=4 and "other".
const ACTIONS: usize = 6;

/// One frame the oracle refused, kept for printing.
#[derive(Clone, Debug)]
pub struct Violation {
    /// Frame number in the run (0-based), for reproduction with the seed.
    pub index: u64,
    /// "generated", "mutated", "replayed" (a batch's counters did not fit),
    /// "given" (`--frame`).
    pub origin: &'static str,
    pub frame: Vec<u8>,
    pub action: Option<u32>,
    pub output: Vec<u8>,
    pub expected: String,
    pub problems: Vec<Problem>,
}

#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub frames: u64,
    pub generated: u64,
    pub mutated: u64,
    pub actions: [u64; ACTIONS],
    /// `XLB_VERDICTS` deltas over the run (replays excluded).
    pub verdicts: [u64; Verdict::COUNT as usize],
    /// Frames with at least one problem.
    pub bad_frames: u64,
    pub categories: BTreeMap<&'static str, u64>,
    /// Per category, its shortest violating frames.
    pub kept: BTreeMap<&'static str, Vec<Violation>>,
    pub elapsed: Duration,
    pub flows_tracked: usize,
    show: usize,
}

impl Report {
    pub fn new(seed: u64, show: usize) -> Self {
        Self {
            seed,
            frames: 0,
            generated: 0,
            mutated: 0,
            actions: [0; ACTIONS],
            verdicts: [0; Verdict::COUNT as usize],
            bad_frames: 0,
            categories: BTreeMap::new(),
            kept: BTreeMap::new(),
            elapsed: Duration::ZERO,
            flows_tracked: 0,
            show,
        }
    }

    pub fn count(&mut self, origin: Origin, action: u32) {
        self.frames += 1;
        match origin {
            Origin::Generated => self.generated += 1,
            Origin::Mutated => self.mutated += 1,
        }
        self.actions[(action as usize).min(ACTIONS - 1)] += 1;
    }

    pub fn add_verdicts(&mut self, delta: &[u64; Verdict::COUNT as usize]) {
        for (total, d) in self.verdicts.iter_mut().zip(delta) {
            *total += d;
        }
    }

    /// Counts a frame's `problems`; `build` makes the full record, called
    /// only when it is kept (one of its categories has few examples yet, or
    /// only longer ones).
    pub fn violation(
        &mut self,
        problems: Vec<Problem>,
        frame_len: usize,
        build: impl FnOnce(Vec<Problem>) -> Violation,
    ) {
        self.bad_frames += 1;
        let mut wanted = Vec::new();
        for p in &problems {
            *self.categories.entry(p.what).or_insert(0) += 1;
            let kept = self.kept.get(p.what).map_or(&[][..], Vec::as_slice);
            if kept.len() < EXAMPLES_PER_CATEGORY || kept.iter().any(|k| k.frame.len() > frame_len)
            {
                wanted.push(p.what);
            }
        }
        if wanted.is_empty() {
            return;
        }
        let v = build(problems);
        for what in wanted {
            let kept = self.kept.entry(what).or_default();
            if kept.len() == EXAMPLES_PER_CATEGORY {
                let longest = (0..kept.len())
                    .max_by_key(|&i| kept[i].frame.len())
                    .unwrap_or(0);
                kept.remove(longest);
            }
            kept.push(v.clone());
        }
    }

    /// The kept violations, each once, at most `show`: the shortest of
    /// every category first, then the next shortest of each.
    pub fn shown(&self) -> Vec<&Violation> {
        let mut by_category: Vec<Vec<&Violation>> = self
            .kept
            .values()
            .map(|k| {
                let mut k: Vec<&Violation> = k.iter().collect();
                k.sort_by_key(|v| (v.frame.len(), v.index));
                k
            })
            .collect();
        by_category.sort_by_key(|k| k.first().map(|v| (v.frame.len(), v.index)));
        let mut out: Vec<&Violation> = Vec::new();
        for round in 0..EXAMPLES_PER_CATEGORY {
            for v in by_category.iter().filter_map(|k| k.get(round)) {
                let same = |o: &&Violation| o.index == v.index && o.origin == v.origin;
                if out.len() < self.show && !out.iter().any(same) {
                    out.push(v);
                }
            }
        }
        out
    }

    pub fn passed(&self) -> bool {
        self.bad_frames == 0
    }

    pub fn frames_per_second(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "xlb-fuzz: {} frames (seed {}) in {:.1} s: {:.0} frames/s; {} generated, {} mutated; \
             {} flows tracked",
            self.frames,
            self.seed,
            self.elapsed.as_secs_f64(),
            self.frames_per_second(),
            self.generated,
            self.mutated,
            self.flows_tracked
        );
        let _ = writeln!(s, "\nactions:");
        for (a, n) in self.actions.iter().enumerate().filter(|(_, n)| **n > 0) {
            let name = if a < ACTIONS - 1 {
                action_name(a as u32)
            } else {
                "other"
            };
            let _ = writeln!(s, "  {name:<22} {n:>12}");
        }
        let _ = writeln!(s, "\nverdict counters (XLB_VERDICTS):");
        for v in Verdict::ALL {
            let _ = writeln!(s, "  {:<22} {:>12}", v.as_str(), self.verdicts[v as usize]);
        }
        if self.passed() {
            let _ = writeln!(s, "\nno violations");
            return s;
        }
        let _ = writeln!(
            s,
            "\n{} frames violated the oracle; problems by category:",
            self.bad_frames
        );
        for (what, n) in &self.categories {
            let _ = writeln!(s, "  {n:>10}  {what}");
        }
        let shown = self.shown();
        let _ = writeln!(
            s,
            "\n{} of them in full (the {EXAMPLES_PER_CATEGORY} shortest frames of each category, at \
             most {}):",
            shown.len(),
            self.show
        );
        for v in shown {
            s.push('\n');
            s.push_str(&render_violation(v));
        }
        s
    }
}

pub fn render_violation(v: &Violation) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "- frame #{} ({}, {} bytes)",
        v.index,
        v.origin,
        v.frame.len()
    );
    for p in &v.problems {
        let _ = writeln!(s, "  problem: {}: {}", p.what, p.detail);
    }
    if !v.expected.is_empty() {
        let _ = writeln!(s, "  expected: {}", v.expected);
    }
    if let Some(a) = v.action {
        let _ = writeln!(
            s,
            "  result: {} with {} bytes",
            action_name(a),
            v.output.len()
        );
    }
    if !v.frame.is_empty() {
        let _ = writeln!(s, "  frame:  {}", hex(&v.frame));
    }
    if !v.output.is_empty() && v.output != v.frame {
        let _ = writeln!(s, "  output: {}", hex(&v.output));
    }
    s
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violation(whats: &[&'static str]) -> Violation {
        Violation {
            index: 3,
            origin: "mutated",
            frame: vec![0xab, 0x01],
            action: Some(3),
            output: vec![0xcd],
            expected: "pass".into(),
            problems: whats
                .iter()
                .map(|w| Problem {
                    what: w,
                    detail: "d".into(),
                })
                .collect(),
        }
    }

    fn record(r: &mut Report, whats: &[&'static str], len: usize, index: u64) {
        let v = violation(whats);
        let problems = v.problems.clone();
        r.violation(problems, len, |problems| Violation {
            index,
            frame: vec![0xab; len],
            problems,
            ..v
        });
    }

    #[test]
    fn counts_every_violation_keeps_the_shortest() {
        let mut r = Report::new(1, 3);
        for i in 0..5 {
            record(&mut r, &["a"], 10 - i as usize, i);
        }
        record(&mut r, &["a", "b"], 2, 5);
        assert_eq!(r.bad_frames, 6);
        assert_eq!(r.categories["a"], 6);
        assert_eq!(r.categories["b"], 1);
        let a: Vec<usize> = r.kept["a"].iter().map(|v| v.frame.len()).collect();
        assert_eq!(a, [6, 2], "the two shortest");
        let shown: Vec<u64> = r.shown().iter().map(|v| v.index).collect();
        assert_eq!(shown, [5, 4], "each once, shortest first");
        record(&mut r, &["c"], 50, 6);
        let shown: Vec<u64> = r.shown().iter().map(|v| v.index).collect();
        assert_eq!(shown, [5, 6, 4], "every category before second examples");
        assert!(!r.passed());
        let text = r.render();
        assert!(text.contains("7 frames violated"), "{text}");
        assert!(text.contains("frame:  abab\n"), "{text}");
        assert!(text.contains("output: cd"), "{text}");
        assert!(text.contains("result: XDP_TX"), "{text}");
    }

    #[test]
    fn a_clean_run_says_so() {
        let mut r = Report::new(1, 3);
        r.count(Origin::Generated, 2);
        r.add_verdicts(&[1; Verdict::COUNT as usize]);
        assert!(r.passed());
        let text = r.render();
        assert!(text.contains("no violations"));
        assert!(text.contains("XDP_PASS"));
    }
}
