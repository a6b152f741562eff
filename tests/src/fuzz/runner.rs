//! The fuzzing loop: frames in batches, each run once through the balancer
//! and judged by the oracle; after each batch the `XLB_VERDICTS` deltas are
//! compared with what the oracle allowed for the batch's frames. A batch
//! whose counters do not fit is replayed frame by frame (reading the counters
//! around each) to name the frames counted under a reason the oracle did not
//! allow.

use std::time::Instant;

use anyhow::Result;
use lb_common::Verdict;

use super::{
    generate::{Generator, Origin, MAX_FRAME},
    oracle::{expect, judge, FlowMemory, Model, Problem, VerdictSet},
    report::{Report, Violation},
    world::World,
};

/// Frames between two reads of the verdict counters.
pub const BATCH: usize = 1024;
/// Room for the outer headers the balancer adds.
const OUT_LEN: usize = MAX_FRAME + 256;
const N: usize = Verdict::COUNT as usize;

/// The frames of one batch (one buffer, no allocation per frame) and the
/// reasons each may have been counted under.
#[derive(Default)]
pub struct Batch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    allowed: Vec<VerdictSet>,
}

impl Batch {
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.allowed.clear();
    }

    pub fn push(&mut self, frame: &[u8], allowed: VerdictSet) {
        self.bytes.extend_from_slice(frame);
        self.ends.push(self.bytes.len());
        self.allowed.push(allowed);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn frame(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// Whether counter deltas `delta` can come from these frames: one count
    /// per frame, each reason counted at least as often as frames allow only
    /// it and at most as often as frames allow it at all.
    pub fn fits(&self, delta: &[u64; N]) -> bool {
        if delta.iter().sum::<u64>() != self.len() as u64 {
            return false;
        }
        Verdict::ALL.into_iter().all(|v| {
            let (at_least, at_most) = self.bounds(v);
            (at_least..=at_most).contains(&delta[v as usize])
        })
    }

    fn bounds(&self, v: Verdict) -> (u64, u64) {
        let only = self.allowed.iter().filter(|s| s.single() == Some(v));
        let any = self.allowed.iter().filter(|s| s.contains(v));
        (only.count() as u64, any.count() as u64)
    }

    fn describe_bounds(&self, delta: &[u64; N]) -> String {
        Verdict::ALL
            .into_iter()
            .filter_map(|v| {
                let (lo, hi) = self.bounds(v);
                let d = delta[v as usize];
                (d != 0 || hi != 0).then(|| format!("{} {d} (allowed {lo}..={hi})", v.as_str()))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs `frames` frames from `seed` through `world`'s balancer.
pub fn run(world: &mut World, frames: u64, seed: u64, show: usize) -> Result<Report> {
    let model = world.model.clone();
    let mut generator = Generator::new(seed, &model);
    let mut flows = FlowMemory::default();
    let mut report = Report::new(seed, show);
    let mut frame = Vec::with_capacity(MAX_FRAME);
    let mut out = vec![0u8; OUT_LEN];
    let mut batch = Batch::default();
    let start = Instant::now();
    let mut last_progress = start;
    let mut index = 0u64;
    while index < frames {
        batch.clear();
        let before = world.verdicts()?;
        let n = (frames - index).min(BATCH as u64);
        for _ in 0..n {
            let origin = generator.next_frame(&mut frame);
            let (action, len) = world.run(&frame, &mut out)?;
            let output = &out[..len];
            let exp = expect(&model, &frame);
            let allowed = match judge(&model, &frame, &exp, action, output) {
                Ok(accepted) => {
                    let moved = accepted
                        .backend
                        .zip(exp.forward)
                        .and_then(|(backend, f)| flows.check(f.flow, backend));
                    if let Some(p) = moved {
                        report.violation(vec![p], frame.len(), |problems| {
                            violation(
                                &model, index, origin, &frame, action, output, &exp, problems,
                            )
                        });
                    }
                    accepted.verdicts
                }
                Err(problems) => {
                    report.violation(problems, frame.len(), |problems| {
                        violation(
                            &model, index, origin, &frame, action, output, &exp, problems,
                        )
                    });
                    // Reported once; whatever it was counted under is moot.
                    VerdictSet::ALL
                }
            };
            report.count(origin, action);
            batch.push(&frame, allowed);
            index += 1;
        }
        let after = world.verdicts()?;
        let mut delta = [0u64; N];
        for (d, (a, b)) in delta.iter_mut().zip(after.iter().zip(&before)) {
            *d = a.wrapping_sub(*b);
        }
        report.add_verdicts(&delta);
        if !batch.fits(&delta) {
            localize(
                world,
                &model,
                &batch,
                &delta,
                index - n,
                &mut out,
                &mut report,
            )?;
        }
        if last_progress.elapsed().as_secs() >= 10 {
            last_progress = Instant::now();
            eprintln!(
                "xlb-fuzz: {index} / {frames} frames, {:.0} frames/s, {} violating",
                index as f64 / start.elapsed().as_secs_f64(),
                report.bad_frames
            );
        }
    }
    report.elapsed = start.elapsed();
    report.flows_tracked = flows.len();
    Ok(report)
}

#[expect(
    clippy::too_many_arguments,
    reason = "everything a report of one frame shows"
)]
fn violation(
    model: &Model,
    index: u64,
    origin: Origin,
    frame: &[u8],
    action: u32,
    output: &[u8],
    exp: &expect::Expectation,
    problems: Vec<Problem>,
) -> Violation {
    Violation {
        index,
        origin: origin.as_str(),
        frame: frame.to_vec(),
        action: Some(action),
        output: output.to_vec(),
        expected: exp.describe(model),
        problems,
    }
}

/// Replays a batch whose counters did not fit, one frame at a time with the
/// counters read around each, and reports the frames counted under a reason
/// their expectation did not allow (or the batch, if none stands out).
fn localize(
    world: &mut World,
    model: &Model,
    batch: &Batch,
    delta: &[u64; N],
    first_index: u64,
    out: &mut [u8],
    report: &mut Report,
) -> Result<()> {
    let mut found = false;
    for i in 0..batch.len() {
        let frame = batch.frame(i);
        let before = world.verdicts()?;
        let (action, len) = world.run(frame, out)?;
        let after = world.verdicts()?;
        let counted: Vec<Verdict> = Verdict::ALL
            .into_iter()
            .filter(|v| after[*v as usize] != before[*v as usize])
            .collect();
        let allowed = batch.allowed[i];
        let fine = matches!(counted.as_slice(), [v] if allowed.contains(*v))
            && after.iter().sum::<u64>() == before.iter().sum::<u64>() + 1;
        if fine {
            continue;
        }
        found = true;
        let names: Vec<&str> = counted.iter().map(|v| v.as_str()).collect();
        let problem = Problem {
            what: "verdict counter disagrees with the oracle",
            detail: format!(
                "counted under [{}] (replayed alone), the oracle allows {allowed}",
                names.join(", ")
            ),
        };
        report.violation(vec![problem], frame.len(), |problems| Violation {
            index: first_index + i as u64,
            origin: "replayed",
            frame: frame.to_vec(),
            action: Some(action),
            output: out[..len].to_vec(),
            expected: expect::expect(model, frame).describe(model),
            problems,
        });
    }
    if !found {
        let problem = Problem {
            what: "verdict counters of a batch do not fit the oracle",
            detail: format!(
                "batch of {} frames from #{first_index}: {}",
                batch.len(),
                batch.describe_bounds(delta)
            ),
        };
        report.violation(vec![problem], 0, |problems| Violation {
            index: first_index,
            origin: "batch",
            frame: Vec::new(),
            action: None,
            output: Vec::new(),
            expected: String::new(),
            problems,
        });
    }
    Ok(())
}

/// Runs one frame and describes everything about it (`xlb-fuzz --frame`).
pub fn explain_one(world: &mut World, frame: &[u8]) -> Result<(bool, String)> {
    let model = world.model.clone();
    let mut out = vec![0u8; OUT_LEN];
    let before = world.verdicts()?;
    let (action, len) = world.run(frame, &mut out)?;
    let after = world.verdicts()?;
    let output = &out[..len];
    let exp = expect::expect(&model, frame);
    let counted: Vec<&str> = Verdict::ALL
        .into_iter()
        .filter(|v| after[*v as usize] != before[*v as usize])
        .map(Verdict::as_str)
        .collect();
    let judged = judge(&model, frame, &exp, action, output);
    let mut problems = match &judged {
        Ok(_) => Vec::new(),
        Err(p) => p.clone(),
    };
    if let Ok(a) = &judged {
        if !counted
            .iter()
            .any(|c| a.verdicts.iter().any(|v| v.as_str() == *c))
        {
            problems.push(Problem {
                what: "verdict counter disagrees with the oracle",
                detail: format!(
                    "counted under [{}], the oracle allows {}",
                    counted.join(", "),
                    a.verdicts
                ),
            });
        }
    }
    let v = Violation {
        index: 0,
        origin: "given",
        frame: frame.to_vec(),
        action: Some(action),
        output: output.to_vec(),
        expected: exp.describe(&model),
        problems: problems.clone(),
    };
    let mut text = super::report::render_violation(&v);
    text.push_str(&format!("  counted: [{}]\n", counted.join(", ")));
    text.push_str(if problems.is_empty() {
        "  verdict: accepted\n"
    } else {
        "  verdict: VIOLATION\n"
    });
    Ok((problems.is_empty(), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_bounds() {
        let mut b = Batch::default();
        b.push(&[1, 2], VerdictSet::of(Verdict::Tx));
        b.push(&[3], VerdictSet::of(Verdict::Tx));
        b.push(
            &[4, 5, 6],
            VerdictSet::of(Verdict::NotVip).with(Verdict::Malformed),
        );
        assert_eq!(b.frame(0), [1, 2]);
        assert_eq!(b.frame(2), [4, 5, 6]);
        let mut d = [0u64; N];
        d[Verdict::Tx as usize] = 2;
        d[Verdict::Malformed as usize] = 1;
        assert!(b.fits(&d));
        d[Verdict::Malformed as usize] = 0;
        d[Verdict::NotVip as usize] = 1;
        assert!(b.fits(&d));
        d[Verdict::Tx as usize] = 1;
        d[Verdict::Redirect as usize] = 1;
        assert!(!b.fits(&d), "a Tx-only frame counted as redirect");
        let mut d = [0u64; N];
        d[Verdict::Tx as usize] = 3;
        assert!(!b.fits(&d), "Tx counted more often than allowed");
        d[Verdict::Tx as usize] = 2;
        assert!(!b.fits(&d), "one count missing");
        assert!(b.describe_bounds(&d).contains("tx 2 (allowed 2..=2)"));
    }
}
