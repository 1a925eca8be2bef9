//! Hugging Face checkpoint directories: the pieces every architecture's importer shares.
//!
//! A `save_pretrained` directory stores its weights in one of a few layouts (one
//! safetensors file, shards behind an index, or a PyTorch pickle), whatever the model; the
//! importers of each architecture read its `config.json` themselves (its fields are the
//! architecture's) and take the weights from [`safetensors::load_dir`], so that every
//! layout works for every architecture.

pub mod safetensors;

pub use safetensors::{WeightFiles, load_dir};
