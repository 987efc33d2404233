//! Optimizers over flat parameter buffers: SGD (momentum, dampening, Nesterov, weight decay),
//! Adam and AdamW, with PyTorch's formulas and defaults. One dispatch per parameter group and
//! step (`shaders/optim.wgsl`); the state (momentum buffers, moments) stays on the device.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::kernels::optim::{encode_adam_step, encode_sgd_step, flags, n_u32, OptimParams};
use crate::nn::ParamGroup;

/// An optimizer and its hyperparameters (torch names and defaults).
///
/// Values are `f64` like the Python floats torch takes: the host derives `1 - beta`,
/// `1 - dampening`, `1 - lr * weight_decay` and the bias corrections in f64 and rounds
/// each to f32 once, as torch does, so that `1 - 0.999` is `0.001` and not `1 - 0.999f32`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// `torch.optim.SGD`.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum factor (0: plain SGD, no buffer).
        momentum: f64,
        /// Dampening of the momentum (0 in torch's default).
        dampening: f64,
        /// L2 penalty added to the gradient.
        weight_decay: f64,
        /// Nesterov momentum (needs momentum > 0 and dampening 0).
        nesterov: bool,
    },
    /// `torch.optim.Adam` (weight decay is an L2 term added to the gradient).
    Adam {
        /// Learning rate (1e-3).
        lr: f64,
        /// β1 (0.9).
        beta1: f64,
        /// β2 (0.999).
        beta2: f64,
        /// eps (1e-8).
        eps: f64,
        /// L2 penalty (0).
        weight_decay: f64,
    },
    /// `torch.optim.AdamW` (decoupled weight decay).
    #[serde(rename = "adamw")]
    AdamW {
        /// Learning rate (1e-3).
        lr: f64,
        /// β1 (0.9).
        beta1: f64,
        /// β2 (0.999).
        beta2: f64,
        /// eps (1e-8).
        eps: f64,
        /// Decoupled weight decay (1e-2).
        weight_decay: f64,
    },
}

impl OptimizerConfig {
    /// SGD with learning rate `lr` and momentum `momentum` (dampening 0, no weight decay,
    /// not Nesterov).
    pub fn sgd(lr: f64, momentum: f64) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }

    /// Adam with torch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.
    pub fn adam() -> Self {
        OptimizerConfig::Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// AdamW with torch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2.
    pub fn adamw() -> Self {
        OptimizerConfig::AdamW {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
        }
    }

    /// The same optimizer with learning rate `lr`.
    pub fn with_lr(mut self, new: f64) -> Self {
        match &mut self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::AdamW { lr, .. } => *lr = new,
        }
        self
    }

    /// The same optimizer with weight decay `wd`.
    pub fn with_weight_decay(mut self, wd: f64) -> Self {
        match &mut self {
            OptimizerConfig::Sgd { weight_decay, .. }
            | OptimizerConfig::Adam { weight_decay, .. }
            | OptimizerConfig::AdamW { weight_decay, .. } => *weight_decay = wd,
        }
        self
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::AdamW { lr, .. } => lr,
        }
    }

    /// Names of the per-element state buffers, in torch's state names.
    pub fn state_names(&self) -> &'static [&'static str] {
        match *self {
            OptimizerConfig::Sgd { momentum, .. } if momentum != 0.0 => &["momentum_buffer"],
            OptimizerConfig::Sgd { .. } => &[],
            OptimizerConfig::Adam { .. } | OptimizerConfig::AdamW { .. } => {
                &["exp_avg", "exp_avg_sq"]
            }
        }
    }

    /// Checks the values the way torch's constructors do.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        let finite_nonneg = |x: f64| x.is_finite() && x >= 0.0;
        match *self {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                dampening,
                weight_decay,
                nesterov,
            } => {
                if !(finite_nonneg(lr)
                    && finite_nonneg(momentum)
                    && dampening.is_finite()
                    && finite_nonneg(weight_decay))
                {
                    return bad(format!(
                        "SGD: invalid lr {lr}, momentum {momentum}, dampening {dampening} or \
                         weight_decay {weight_decay}"
                    ));
                }
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return bad(
                        "SGD: Nesterov momentum requires a momentum and zero dampening".into(),
                    );
                }
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | OptimizerConfig::AdamW {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let beta_ok = |b: f64| (0.0..1.0).contains(&b);
                if !(finite_nonneg(lr)
                    && finite_nonneg(eps)
                    && finite_nonneg(weight_decay)
                    && beta_ok(beta1)
                    && beta_ok(beta2))
                {
                    return bad(format!(
                        "Adam: invalid lr {lr}, betas ({beta1}, {beta2}), eps {eps} or \
                         weight_decay {weight_decay}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An optimizer's state for a list of parameter groups, and its step count.
#[derive(Debug)]
pub struct Optimizer {
    cfg: OptimizerConfig,
    step: u64,
    sizes: Vec<usize>,
    /// Per group, one tensor per name of [`OptimizerConfig::state_names`].
    state: Vec<Vec<Tensor>>,
    /// Bound in place of the momentum buffer by plain SGD (a buffer may not be bound both
    /// read-only and read-write in one dispatch, so the gradients cannot stand in).
    placeholder: Tensor,
}

impl Optimizer {
    /// Zero state (torch's lazily created buffers) for `groups`, step count 0.
    pub fn new(gpu: &Gpu, cfg: OptimizerConfig, groups: &[ParamGroup]) -> Result<Self> {
        cfg.validate()?;
        let mut sizes = Vec::new();
        let mut state = Vec::new();
        for g in groups {
            let n = g.params.numel();
            if g.grads.numel() != n {
                return Err(Error::Shape {
                    what: "gradient buffer of a parameter group".into(),
                    expected: g.params.shape.clone(),
                    got: g.grads.shape.clone(),
                });
            }
            n_u32(n)?;
            sizes.push(n);
            state.push(
                cfg.state_names()
                    .iter()
                    .map(|name| gpu.zeros(&format!("optim.{name}"), &[n]))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        Ok(Optimizer {
            cfg,
            step: 0,
            sizes,
            state,
            placeholder: gpu.zeros("optim.unused", &[1])?,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &OptimizerConfig {
        &self.cfg
    }

    /// Changes the learning rate for later steps (schedules).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        let cfg = self.cfg.with_lr(lr);
        cfg.validate()?;
        self.cfg = cfg;
        Ok(())
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Sets the step count (restoring a checkpoint).
    pub fn set_step_count(&mut self, step: u64) {
        self.step = step;
    }

    /// Element count of each group.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// The state tensors of group `g`, one per [`OptimizerConfig::state_names`] entry.
    pub fn state(&self, g: usize) -> &[Tensor] {
        self.state.get(g).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Records one step over every group (one dispatch each) and counts it.
    pub fn record_step(&mut self, rec: &mut Recorder, groups: &[ParamGroup]) -> Result<()> {
        if groups.len() != self.sizes.len()
            || groups
                .iter()
                .zip(&self.sizes)
                .any(|(g, &n)| g.params.numel() != n || g.grads.numel() != n)
        {
            return Err(Error::InvalidConfig(format!(
                "optimizer was built for groups of sizes {:?}",
                self.sizes
            )));
        }
        let step = self
            .step
            .checked_add(1)
            .ok_or_else(|| Error::Overflow("the optimizer's step count".into()))?;
        let step_u32 = u32::try_from(step).unwrap_or(u32::MAX);
        // Derived copies of parameters (an Rnn's f16 copy) are re-made after this.
        rec.writes_params();
        for (g, st) in groups.iter().zip(&self.state) {
            let n = n_u32(g.params.numel())?;
            match self.cfg {
                OptimizerConfig::Sgd {
                    lr,
                    momentum,
                    dampening,
                    weight_decay,
                    nesterov,
                } => {
                    let mut f = 0;
                    if momentum != 0.0 {
                        f |= flags::HAS_MOMENTUM;
                    }
                    if nesterov {
                        f |= flags::NESTEROV;
                    }
                    if step == 1 {
                        f |= flags::FIRST;
                    }
                    let p = OptimParams {
                        n,
                        step: step_u32,
                        flags: f,
                        lr: lr as f32,
                        a: momentum as f32,
                        b: dampening as f32,
                        weight_decay: weight_decay as f32,
                        one_minus_a: (1.0 - dampening) as f32,
                        ..Default::default()
                    };
                    let buf = st
                        .first()
                        .map(|t| &t.buffer)
                        .unwrap_or(&self.placeholder.buffer);
                    encode_sgd_step(rec, &g.params.buffer, &g.grads.buffer, buf, &p)?;
                }
                OptimizerConfig::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                }
                | OptimizerConfig::AdamW {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let decoupled = matches!(self.cfg, OptimizerConfig::AdamW { .. });
                    // torch computes these in Python floats (f64) from the step count.
                    let t = step as f64;
                    let bc1 = 1.0 - beta1.powf(t);
                    let bc2 = 1.0 - beta2.powf(t);
                    let p = OptimParams {
                        n,
                        step: step_u32,
                        flags: if decoupled { flags::DECOUPLED } else { 0 },
                        lr: lr as f32,
                        a: beta1 as f32,
                        b: beta2 as f32,
                        eps: eps as f32,
                        weight_decay: weight_decay as f32,
                        step_size: (lr / bc1) as f32,
                        bc2_sqrt: bc2.sqrt() as f32,
                        decay: (1.0 - lr * weight_decay) as f32,
                        one_minus_a: (1.0 - beta1) as f32,
                        one_minus_b: (1.0 - beta2) as f32,
                        ..Default::default()
                    };
                    let (m, v) = match st.as_slice() {
                        [m, v] => (m, v),
                        _ => return Err(Error::Gpu("Adam state missing".into())),
                    };
                    encode_adam_step(
                        rec,
                        &g.params.buffer,
                        &g.grads.buffer,
                        &m.buffer,
                        &v.buffer,
                        &p,
                    )?;
                }
            }
        }
        self.step = step;
        Ok(())
    }
}
