//! Differentiable building blocks shared by the models: ops whose backward pass candle
//! lacks or gets wrong, written so that gradients can be trusted.

pub mod conv;
pub mod fused;
