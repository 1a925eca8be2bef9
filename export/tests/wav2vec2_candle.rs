//! The candle Wav2Vec2 / HuBERT forward pass against transformers (PyTorch) on the seeded
//! tiny checkpoints of `tests/fixtures/wav2vec2` (written by `gen_fixtures.py` there):
//! logits for a padded batch of two, batch independence, and input validation.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use hearken_export::Error;
use hearken_export::wav2vec2::model::Wav2Vec2Model;
use hearken_export::wav2vec2::{Wav2Vec2Checkpoint, load_dir};

/// Largest accepted |candle - torch| on any logit.
const TOLERANCE: f32 = 1e-4;

/// Every fixture model directory.
const MODELS: [&str; 6] = [
    "wav2vec2-ctc",
    "wav2vec2-ctc-stable",
    "wav2vec2-cls",
    "hubert-ctc",
    "hubert-cls-weighted",
    "hubert-cls-stable",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wav2vec2")
}

fn npy(path: &Path) -> Tensor {
    Tensor::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (2, 16000) f32 inputs and their (2, 16000) i64 mask (16000 and 11200 valid samples).
fn batch() -> (Tensor, Tensor) {
    (
        npy(&fixtures().join("input_values.npy")),
        npy(&fixtures().join("attention_mask.npy")),
    )
}

fn checkpoint(name: &str) -> Wav2Vec2Checkpoint {
    load_dir(fixtures().join(name)).unwrap()
}

fn model(name: &str) -> Wav2Vec2Model {
    Wav2Vec2Model::new(&checkpoint(name)).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn check_against_torch(name: &str) {
    let (input, mask) = batch();
    let logits = model(name).forward(&input, Some(&mask)).unwrap();
    let expected = npy(&fixtures().join(name).join("logits.npy"));
    let diff = max_abs_diff(&logits, &expected);
    println!(
        "{name}: logits {:?}, max |candle - torch| = {diff:.3e}",
        logits.dims()
    );
    assert!(diff <= TOLERANCE, "{name}: max diff {diff} > {TOLERANCE}");
}

#[test]
fn wav2vec2_ctc_matches_torch() {
    check_against_torch("wav2vec2-ctc");
}

#[test]
fn wav2vec2_ctc_stable_matches_torch() {
    check_against_torch("wav2vec2-ctc-stable");
}

#[test]
fn wav2vec2_cls_matches_torch() {
    check_against_torch("wav2vec2-cls");
}

#[test]
fn hubert_ctc_matches_torch() {
    check_against_torch("hubert-ctc");
}

#[test]
fn hubert_cls_weighted_matches_torch() {
    check_against_torch("hubert-cls-weighted");
}

#[test]
fn hubert_cls_stable_matches_torch() {
    check_against_torch("hubert-cls-stable");
}

#[test]
fn unpadded_example_alone_equals_its_batch_row() {
    let (input, mask) = batch();
    let first = input.i(0..1).unwrap();
    for name in MODELS {
        let m = model(name);
        let batched = m.forward(&input, Some(&mask)).unwrap().i(0..1).unwrap();
        let alone = m.forward(&first, None).unwrap();
        let diff = max_abs_diff(&alone, &batched);
        println!("{name}: max |alone - batch row 0| = {diff:.3e}");
        assert!(diff <= TOLERANCE, "{name}: {diff}");
    }
}

#[test]
fn mask_dtypes_are_equivalent() {
    let (input, mask) = batch();
    let m = model("wav2vec2-cls");
    let reference = m.forward(&input, Some(&mask)).unwrap();
    for dtype in [DType::U8, DType::U32, DType::F32] {
        let logits = m
            .forward(&input, Some(&mask.to_dtype(dtype).unwrap()))
            .unwrap();
        assert_eq!(max_abs_diff(&logits, &reference), 0.0, "{dtype:?}");
    }
}

#[test]
fn hidden_states_have_one_entry_per_layer_plus_one() {
    let (input, mask) = batch();
    for name in ["wav2vec2-ctc", "wav2vec2-ctc-stable"] {
        let ckpt = checkpoint(name);
        let m = Wav2Vec2Model::new(&ckpt).unwrap();
        let all = m.hidden_states(&input, Some(&mask)).unwrap();
        let last = m.last_hidden_state(&input, Some(&mask)).unwrap();
        assert_eq!(all.len(), ckpt.config.num_hidden_layers + 1, "{name}");
        assert_eq!(last.dims(), &[2, 49, ckpt.config.hidden_size], "{name}");
        for h in &all {
            assert_eq!(h.dims(), last.dims(), "{name}");
        }
        let tail = all.last().unwrap();
        assert_eq!(max_abs_diff(tail, &last), 0.0, "{name}");
    }
}

#[test]
fn model_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Wav2Vec2Model>();
}

fn invalid(result: Result<Tensor, Error>) -> (String, String, String) {
    match result {
        Err(Error::InvalidInput {
            what,
            expected,
            got,
        }) => (what, expected, got),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn refuses_inputs_of_the_wrong_rank() {
    let m = model("wav2vec2-ctc");
    let one_axis = Tensor::zeros(16_000, DType::F32, &Device::Cpu).unwrap();
    let (what, _, got) = invalid(m.forward(&one_axis, None));
    assert!(what.contains("input_values shape"), "{what}");
    assert_eq!(got, "[16000]");
    let three_axes = Tensor::zeros((1, 1, 16_000), DType::F32, &Device::Cpu).unwrap();
    invalid(m.forward(&three_axes, None));
    let empty = Tensor::zeros((0, 16_000), DType::F32, &Device::Cpu).unwrap();
    invalid(m.forward(&empty, None));
    let ints = Tensor::zeros((1, 16_000), DType::I64, &Device::Cpu).unwrap();
    let (what, _, _) = invalid(m.forward(&ints, None));
    assert!(what.contains("dtype"), "{what}");
}

#[test]
fn refuses_a_mask_of_another_shape_or_with_other_values() {
    let m = model("hubert-cls-weighted");
    let (input, mask) = batch();
    let short = mask.i((.., ..15_999)).unwrap();
    let (what, expected, got) = invalid(m.forward(&input, Some(&short)));
    assert!(what.contains("attention_mask shape"), "{what}");
    assert!(expected.contains("[2, 16000]"), "{expected}");
    assert_eq!(got, "[2, 15999]");
    let one_row = mask.i(0..1).unwrap();
    invalid(m.forward(&input, Some(&one_row)));
    let twos = (mask.to_dtype(DType::F32).unwrap() * 2.0).unwrap();
    let (what, _, got) = invalid(m.forward(&input, Some(&twos)));
    assert!(what.contains("value"), "{what}");
    assert_eq!(got, "2");
}

#[test]
fn refuses_inputs_shorter_than_the_receptive_field() {
    let m = model("wav2vec2-ctc-stable");
    assert_eq!(m.receptive_field_samples(), 400);
    let ok = Tensor::zeros((1, 400), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.forward(&ok, None).unwrap().dims(), &[1, 1, 28]);
    let short = Tensor::zeros((1, 399), DType::F32, &Device::Cpu).unwrap();
    let (what, expected, got) = invalid(m.forward(&short, None));
    assert!(what.contains("length"), "{what}");
    assert!(expected.contains("400"), "{expected}");
    assert_eq!(got, "399 samples");

    // Long enough, but the second example has only 399 valid samples.
    let input = Tensor::zeros((2, 1_000), DType::F32, &Device::Cpu).unwrap();
    let mut rows = vec![1i64; 2_000];
    rows[1_000 + 399..].fill(0);
    let mask = Tensor::from_vec(rows, (2, 1_000), &Device::Cpu).unwrap();
    let (what, _, got) = invalid(m.forward(&input, Some(&mask)));
    assert!(what.contains("example 1"), "{what}");
    assert_eq!(got, "399");
}

#[test]
fn new_checks_tensor_shapes_against_the_config() {
    let mut ckpt = checkpoint("wav2vec2-ctc");
    let name = "encoder.layers.1.feed_forward.intermediate_dense.weight";
    ckpt.tensors.insert(
        name.into(),
        Tensor::zeros((64, 31), DType::F32, &Device::Cpu).unwrap(),
    );
    match Wav2Vec2Model::new(&ckpt) {
        Err(Error::ShapeMismatch {
            name: n,
            expected,
            got,
        }) => {
            assert_eq!(n, name);
            assert_eq!(expected, vec![64, 32]);
            assert_eq!(got, vec![64, 31]);
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    ckpt.tensors.remove(name);
    match Wav2Vec2Model::new(&ckpt) {
        Err(Error::MissingTensor { name: n }) => assert_eq!(n, name),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}
