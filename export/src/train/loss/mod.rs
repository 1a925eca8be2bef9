//! Differentiable losses, one file per task, each built from candle ops that have a
//! backward pass (no fused op whose gradient candle does not record).

pub mod classify;
