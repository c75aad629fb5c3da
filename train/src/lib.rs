//! The training backend of ditto's IR (issue 17, quantization-aware
//! distillation): a compiled graph evaluated differentiably on candle
//! tensors. The teacher is the float graph; the student is the same model
//! lowered under a policy — its approximations and formats — evaluated with
//! fake quantization exactly where the `fixed` backend rounds, so the model
//! trained is the one MPC runs.

pub mod distill;
pub mod forward;
pub mod head;
pub mod quant;

pub use distill::{
    loss, loss_batch, target, targets, Pair, Recipe, Stage, Tap, TapKind, Target, Trainer,
};
pub use forward::{forward, forward_batch, high, to_eval, Forward, Mode, Params};
