//! The trainable candle Wav2Vec2 / HuBERT: gradients against PyTorch on the seeded tiny
//! classification checkpoints of `tests/fixtures/wav2vec2` (references written by
//! `gen_train_fixtures.py` there), gradient coverage, reproducible training mode, variable
//! selection, new heads and scratch models, and saving as a Hugging Face checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer;
use hearken_export::Error;
use hearken_export::train::loss::classify::cross_entropy;
use hearken_export::wav2vec2::init::Preset;
use hearken_export::wav2vec2::model::{Mode, Trainable, Wav2Vec2Model};
use hearken_export::wav2vec2::{
    Family, Head, Wav2Vec2Checkpoint, load_dir, load_dir_with_new_head,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Largest accepted `||g_candle - g_torch|| / ||g_torch||` for any parameter, and relative
/// difference of the losses.
const GRAD_TOLERANCE: f64 = 1e-4;

/// Largest accepted gradient norm for a parameter whose exact gradient is zero (attention
/// key biases): PyTorch's own float32 value is about 3e-12.
const ZERO_GRAD_NORM: f64 = 1e-6;

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

fn norm(t: &Tensor) -> f64 {
    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt()
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

fn labels(ids: &[i64]) -> Tensor {
    Tensor::new(ids, &Device::Cpu).unwrap()
}

/// One classification loss and its gradients, in training mode with `seed`.
fn loss_and_grads(
    model: &Wav2Vec2Model,
    seed: u64,
    ids: &[i64],
) -> (f32, candle_core::backprop::GradStore) {
    let (input, mask) = batch();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let logits = model
        .forward_t(&input, Some(&mask), Mode::Train { rng: &mut rng })
        .unwrap();
    let loss = cross_entropy(&logits, &labels(ids)).unwrap();
    let grads = loss.backward().unwrap();
    (loss.to_scalar::<f32>().unwrap(), grads)
}

#[derive(serde::Deserialize)]
struct Reference {
    labels: Vec<i64>,
    loss: f64,
    zero_gradient: Vec<String>,
}

fn check_gradients_against_torch(name: &str) {
    let dir = fixtures().join("grads");
    let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
    let reference: Reference = serde_json::from_str(&text).unwrap();
    let torch =
        candle_core::safetensors::load(dir.join(format!("{name}.safetensors")), &Device::Cpu)
            .unwrap();

    let model = Wav2Vec2Model::new(&checkpoint(name)).unwrap();
    let (loss, grads) = loss_and_grads(&model, 0, &reference.labels);
    let loss_err = (f64::from(loss) - reference.loss).abs() / reference.loss.abs();
    println!(
        "{name}: loss {loss} vs torch {}, relative error {loss_err:.2e}",
        reference.loss
    );
    assert!(loss_err <= GRAD_TOLERANCE, "{name}: loss error {loss_err}");

    let vars = model.trainable_vars();
    let ours: BTreeMap<&str, &Var> = vars.iter().map(|(n, v)| (n.as_str(), v)).collect();
    let theirs: BTreeMap<&str, &Tensor> = torch.iter().map(|(n, t)| (n.as_str(), t)).collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{name}: parameter names"
    );
    let mut worst = (0.0, String::new());
    for (param, var) in ours {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient for {param}"));
        let t = theirs[param];
        assert_eq!(g.dims(), t.dims(), "{name}: {param}");
        if reference.zero_gradient.iter().any(|z| z == param) {
            let n = norm(g);
            println!("  {param:64} exact gradient 0: |g| = {n:.1e}");
            assert!(n <= ZERO_GRAD_NORM, "{name}: {param} has |g| {n}");
            continue;
        }
        let rel = norm(&(g - t).unwrap()) / norm(t);
        println!("  {param:64} |g| {:.3e}  relative error {rel:.2e}", norm(t));
        if rel > worst.0 {
            worst = (rel, param.to_string());
        }
    }
    println!(
        "{name}: worst relative gradient error {:.2e} ({})",
        worst.0, worst.1
    );
    assert!(
        worst.0 <= GRAD_TOLERANCE,
        "{name}: {} off by {}",
        worst.1,
        worst.0
    );
}

#[test]
fn wav2vec2_cls_gradients_match_torch() {
    check_gradients_against_torch("wav2vec2-cls");
}

#[test]
fn hubert_cls_weighted_gradients_match_torch() {
    check_gradients_against_torch("hubert-cls-weighted");
}

#[test]
fn hubert_cls_stable_gradients_match_torch() {
    check_gradients_against_torch("hubert-cls-stable");
}

/// A fixture with training-time regularization switched on (LayerDrop as given), and
/// SpecAugment's `masked_spec_embed` initialized (the fixtures were saved without masking).
fn regularized(name: &str, seed: u64, layerdrop: f64) -> Wav2Vec2Model {
    let mut ckpt = checkpoint(name);
    let c = &mut ckpt.config;
    c.hidden_dropout = 0.1;
    c.attention_dropout = 0.1;
    c.activation_dropout = 0.1;
    c.feat_proj_dropout = 0.1;
    c.final_dropout = 0.1;
    c.layerdrop = layerdrop;
    c.mask_time_prob = 0.3;
    c.mask_time_length = 5;
    c.mask_feature_prob = 0.2;
    c.mask_feature_length = 4;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Wav2Vec2Model::from_checkpoint(&ckpt, &Device::Cpu, Some(&mut rng)).unwrap()
}

/// Asserts that every trainable variable but the attention key biases (whose exact
/// gradient is zero) gets a non-zero gradient from one classification loss.
fn assert_every_variable_learns(what: &str, model: &Wav2Vec2Model, seed: u64) {
    let (_, grads) = loss_and_grads(model, seed, &[2, 1]);
    let vars = model.trainable_vars();
    assert!(!vars.is_empty());
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
        if name.ends_with("attention.k_proj.bias") {
            continue;
        }
        assert!(norm(g) > 0.0, "{what}: zero gradient for {name}");
    }
    println!("{what}: {} variables, all with a gradient", vars.len());
}

#[test]
fn every_variable_gets_a_gradient_in_each_family() {
    // Post-LN with a GroupNorm feature encoder, HuBERT with a weighted layer sum, pre-LN.
    for name in ["wav2vec2-cls", "hubert-cls-weighted", "hubert-cls-stable"] {
        let plain = Wav2Vec2Model::new(&checkpoint(name)).unwrap();
        assert_every_variable_learns(name, &plain, 0);
        // With dropout and masking on, `masked_spec_embed` included (no LayerDrop, which
        // would leave a skipped layer without gradient; see the next test).
        let model = regularized(name, 1, 0.0);
        assert!(
            model
                .vars()
                .iter()
                .any(|(n, _)| n.ends_with("masked_spec_embed"))
        );
        assert_every_variable_learns(&format!("{name} regularized"), &model, 5);
    }
}

#[test]
fn layerdrop_skips_layers_in_training_only() {
    let mut ckpt = checkpoint("wav2vec2-cls");
    ckpt.config.layerdrop = 1.0;
    let model = Wav2Vec2Model::new(&ckpt).unwrap();
    let (_, grads) = loss_and_grads(&model, 0, &[2, 1]);
    for (name, var) in model.vars() {
        let in_a_layer = name.contains(".encoder.layers.");
        assert_eq!(grads.get(var.as_tensor()).is_none(), in_a_layer, "{name}");
    }
    ckpt.config.layerdrop = 0.5;
    let half = Wav2Vec2Model::new(&ckpt).unwrap();
    let skipped: Vec<usize> = (0..20)
        .map(|seed| {
            let (_, grads) = loss_and_grads(&half, seed, &[2, 1]);
            half.vars()
                .iter()
                .filter(|(n, v)| n.ends_with("q_proj.weight") && grads.get(v.as_tensor()).is_none())
                .count()
        })
        .collect();
    // Two layers, each skipped with probability 0.5: some steps run both, some skip.
    assert!(
        skipped.contains(&0) && skipped.iter().any(|&n| n > 0),
        "{skipped:?}"
    );
    let (input, mask) = batch();
    let a = half.forward(&input, Some(&mask)).unwrap();
    let b = Wav2Vec2Model::new(&checkpoint("wav2vec2-cls"))
        .unwrap()
        .forward(&input, Some(&mask))
        .unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0, "evaluation skips nothing");
}

#[test]
fn train_mode_is_reproducible_from_the_seed_and_differs_from_eval() {
    let (input, mask) = batch();
    for name in ["hubert-cls-weighted", "wav2vec2-cls"] {
        let model = regularized(name, 1, 0.2);
        let train = |seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let logits = model
                .forward_t(&input, Some(&mask), Mode::Train { rng: &mut rng })
                .unwrap();
            (logits, rng.get_word_pos())
        };
        let (a, pos_a) = train(7);
        let (b, pos_b) = train(7);
        assert_eq!(max_abs_diff(&a, &b), 0.0, "{name}: same seed");
        assert_eq!(pos_a, pos_b, "{name}: same number of draws");
        let (c, _) = train(8);
        assert!(max_abs_diff(&a, &c) > 1e-4, "{name}: another seed");
        let eval = model.forward(&input, Some(&mask)).unwrap();
        let eval2 = model.forward_t(&input, Some(&mask), Mode::Eval).unwrap();
        assert_eq!(max_abs_diff(&eval, &eval2), 0.0, "{name}: eval");
        let d = max_abs_diff(&a, &eval);
        println!("{name}: max |train - eval| = {d:.3e}, {pos_a} rng words");
        assert!(d > 1e-4, "{name}: train equals eval");

        // A run resumed from the rng's position draws what the uninterrupted one does.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        model
            .forward_t(&input, Some(&mask), Mode::Train { rng: &mut rng })
            .unwrap();
        let second = model
            .forward_t(&input, Some(&mask), Mode::Train { rng: &mut rng })
            .unwrap();
        let mut resumed = ChaCha8Rng::seed_from_u64(7);
        resumed.set_word_pos(pos_a);
        let again = model
            .forward_t(&input, Some(&mask), Mode::Train { rng: &mut resumed })
            .unwrap();
        assert_eq!(max_abs_diff(&second, &again), 0.0, "{name}: resumed");
    }
}

#[test]
fn with_zero_probabilities_train_mode_is_eval() {
    let (input, mask) = batch();
    let model = Wav2Vec2Model::new(&checkpoint("hubert-cls-stable")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let train = model
        .forward_t(&input, Some(&mask), Mode::Train { rng: &mut rng })
        .unwrap();
    let eval = model.forward(&input, Some(&mask)).unwrap();
    assert_eq!(max_abs_diff(&train, &eval), 0.0);
}

fn names_with_gradients(model: &Wav2Vec2Model) -> Vec<String> {
    let (_, grads) = loss_and_grads(model, 0, &[0, 3]);
    model
        .vars()
        .into_iter()
        .filter(|(_, v)| grads.get(v.as_tensor()).is_some())
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn frozen_variables_are_left_out_and_get_no_gradient() {
    for name in ["hubert-cls-weighted", "hubert-cls-stable"] {
        let mut model = Wav2Vec2Model::new(&checkpoint(name)).unwrap();
        let stable = model.config().do_stable_layer_norm;
        let all: Vec<String> = model.vars().into_iter().map(|(n, _)| n).collect();
        let trainable = |m: &Wav2Vec2Model| -> Vec<String> {
            m.trainable_vars().into_iter().map(|(n, _)| n).collect()
        };
        assert_eq!(trainable(&model), all);
        assert_eq!(names_with_gradients(&model), all);

        model
            .set_trainable(Trainable::AllButFeatureEncoder)
            .unwrap();
        let t = trainable(&model);
        assert!(t.iter().all(|n| !n.contains("feature_extractor")));
        assert!(t.iter().any(|n| n.contains("feature_projection")));
        assert_eq!(
            t.len(),
            all.iter()
                .filter(|n| !n.contains("feature_extractor"))
                .count()
        );
        assert_eq!(
            names_with_gradients(&model),
            t,
            "{name}: frozen feature encoder"
        );

        model
            .set_trainable(Trainable::TopLayers { n_layers: 1 })
            .unwrap();
        let t = trainable(&model);
        let expected: Vec<String> = all
            .iter()
            .filter(|n| {
                !n.starts_with("hubert.")
                    || n.starts_with("hubert.encoder.layers.1.")
                    || (stable && n.starts_with("hubert.encoder.layer_norm."))
            })
            .cloned()
            .collect();
        assert_eq!(t, expected, "{name}: top layer");
        assert_eq!(names_with_gradients(&model), t, "{name}: top layer");

        model.set_trainable(Trainable::Head).unwrap();
        let t = trainable(&model);
        assert!(t.iter().all(|n| !n.starts_with("hubert.")));
        assert!(t.iter().any(|n| n == "classifier.weight"));
        assert_eq!(names_with_gradients(&model), t, "{name}: head");

        let e = model
            .set_trainable(Trainable::TopLayers { n_layers: 3 })
            .unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
        assert_eq!(model.trainable(), Trainable::Head);
    }
}

fn std_of(t: &Tensor) -> f64 {
    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
    (v.iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / v.len() as f64)
        .sqrt()
}

fn var(model: &Wav2Vec2Model, name: &str) -> Tensor {
    model
        .vars()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
        .as_tensor()
        .clone()
}

#[test]
fn a_new_classifier_on_a_base_checkpoint_is_initialized_as_transformers_does() {
    let labels: Vec<String> = ["yes", "no", "stop"].map(String::from).into();
    let head = Head::Classifier {
        labels: labels.clone(),
    };
    let mut ckpt = load_dir_with_new_head(fixtures().join("hubert-ctc"), head).unwrap();
    ckpt.config.classifier_proj_size = Some(512);

    let e = Wav2Vec2Model::new(&ckpt).unwrap_err();
    assert!(
        matches!(&e, Error::MissingTensor { name } if name == "projector.weight"),
        "{e}"
    );

    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let model = Wav2Vec2Model::from_checkpoint(&ckpt, &Device::Cpu, Some(&mut rng)).unwrap();
    let (input, mask) = batch();
    assert_eq!(model.forward(&input, Some(&mask)).unwrap().dims(), &[2, 3]);
    let projector = var(&model, "projector.weight");
    assert_eq!(projector.dims(), &[512, 32]);
    let s = std_of(&projector);
    assert!((s - 0.02).abs() < 0.001, "projector std {s}");
    for bias in ["projector.bias", "classifier.bias"] {
        assert_eq!(norm(&var(&model, bias)), 0.0, "{bias}");
    }
    assert_eq!(var(&model, "classifier.weight").dims(), &[3, 512]);
    // The base model is the checkpoint's.
    let name = "encoder.layers.1.attention.q_proj.weight";
    let loaded = var(&model, &format!("hubert.{name}"));
    assert_eq!(max_abs_diff(&loaded, &ckpt.tensors[name]), 0.0);
    assert!(!model.vars().iter().any(|(n, _)| n.starts_with("lm_head")));

    // The same seed gives the same head.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let again = Wav2Vec2Model::from_checkpoint(&ckpt, &Device::Cpu, Some(&mut rng)).unwrap();
    assert_eq!(
        max_abs_diff(&projector, &var(&again, "projector.weight")),
        0.0
    );
    assert_eq!(model.config().labels(), Some(labels));
}

#[test]
fn training_never_writes_into_the_checkpoint() {
    let ckpt = checkpoint("wav2vec2-cls");
    let before = ckpt.tensors["classifier.weight"].copy().unwrap();
    let model = Wav2Vec2Model::new(&ckpt).unwrap();
    let vars: Vec<Var> = model.trainable_vars().into_iter().map(|(_, v)| v).collect();
    let mut sgd = candle_nn::SGD::new(vars, 0.1).unwrap();
    let (input, mask) = batch();
    let logits = model.forward(&input, Some(&mask)).unwrap();
    sgd.backward_step(&cross_entropy(&logits, &labels(&[0, 1])).unwrap())
        .unwrap();
    assert_eq!(
        max_abs_diff(&before, &ckpt.tensors["classifier.weight"]),
        0.0
    );
    assert!(max_abs_diff(&before, &var(&model, "classifier.weight")) > 0.0);
}

fn tiny(family: Family, head: Head, seed: u64) -> Wav2Vec2Model {
    let config = Preset::Tiny.config(family).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Wav2Vec2Model::from_scratch(&config, head, &Device::Cpu, &mut rng).unwrap()
}

fn four_labels() -> Head {
    Head::Classifier {
        labels: ["a", "b", "c", "d"].map(String::from).into(),
    }
}

fn ctc_head() -> Head {
    Head::Ctc {
        vocab: ["<pad>", "|", "a", "b", "c"].map(String::from).into(),
        blank_id: 0,
        word_delimiter: Some("|".into()),
    }
}

fn n_parameters(model: &Wav2Vec2Model) -> usize {
    model
        .trainable_vars()
        .iter()
        .map(|(_, v)| v.as_tensor().elem_count())
        .sum()
}

#[test]
fn scratch_models_are_seeded_and_learn() {
    let (input, mask) = batch();
    for family in [Family::Hubert, Family::Wav2Vec2] {
        let a = tiny(family, four_labels(), 11);
        let b = tiny(family, four_labels(), 11);
        let c = tiny(family, four_labels(), 12);
        let la = a.forward(&input, Some(&mask)).unwrap();
        assert_eq!(la.dims(), &[2, 4]);
        assert_eq!(
            max_abs_diff(&la, &b.forward(&input, Some(&mask)).unwrap()),
            0.0
        );
        assert!(max_abs_diff(&la, &c.forward(&input, Some(&mask)).unwrap()) > 0.0);
        // Initialization as transformers': feature-encoder convolutions Kaiming normal,
        // the projection N(0, 0.02) for HuBERT and U(±1/sqrt(32)) for Wav2Vec2, and the
        // positional `g` the norm of `v`.
        let p = family.as_str();
        let conv = var(
            &a,
            &format!("{p}.feature_extractor.conv_layers.1.conv.weight"),
        );
        let s = std_of(&conv) / (2.0f64 / 96.0).sqrt();
        assert!((s - 1.0).abs() < 0.05, "{p}: conv std ratio {s}");
        let proj = std_of(&var(
            &a,
            &format!("{p}.feature_projection.projection.weight"),
        ));
        let want = match family {
            Family::Hubert => 0.02,
            Family::Wav2Vec2 => (1.0f64 / 32.0).sqrt() / 3f64.sqrt(),
        };
        assert!(
            (proj / want - 1.0).abs() < 0.05,
            "{p}: projection std {proj}"
        );
        let g = var(&a, &format!("{p}.encoder.pos_conv_embed.conv.weight_g"));
        let v = var(&a, &format!("{p}.encoder.pos_conv_embed.conv.weight_v"));
        let v_norm = v
            .sqr()
            .unwrap()
            .sum_keepdim(0)
            .unwrap()
            .sum_keepdim(1)
            .unwrap()
            .sqrt()
            .unwrap();
        assert!(max_abs_diff(&g, &v_norm) < 1e-6);
        let embed = var(&a, &format!("{p}.masked_spec_embed"));
        let (lo, hi) = (
            embed.min_all().unwrap().to_scalar::<f32>().unwrap(),
            embed.max_all().unwrap().to_scalar::<f32>().unwrap(),
        );
        assert!(
            lo >= 0.0 && hi <= 1.0 && hi > 0.5,
            "{p}: masked_spec_embed in U(0, 1)"
        );
        println!("{p} tiny: {} parameters", n_parameters(&a));
        assert_every_variable_learns(&format!("{p} tiny"), &a, 2);
    }
}

#[test]
fn the_base_preset_has_hubert_base_ls960s_size() {
    let config = Preset::Base.config(Family::Hubert).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let model =
        Wav2Vec2Model::from_scratch(&config, four_labels(), &Device::Cpu, &mut rng).unwrap();
    // transformers: HubertForSequenceClassification(HubertConfig(num_labels=4)).
    assert_eq!(n_parameters(&model), 94_569_604);
}

#[test]
fn save_then_load_gives_the_same_logits() {
    let (input, mask) = batch();
    // Where to leave the saved models for `check_hf_load.py` (a temporary directory when
    // unset).
    let keep = std::env::var_os("HEARKEN_W2V_SAVE_DIR").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let root = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());

    // A fixture after one training step (every parameter moved, the positional g and v
    // included), a new classifier on a base model, scratch models of both families with
    // both heads, and HuBERT's positional BatchNorm after a training step.
    let mut models: Vec<(&str, Wav2Vec2Model)> = Vec::new();
    let stepped = Wav2Vec2Model::new(&checkpoint("hubert-cls-weighted")).unwrap();
    let vars: Vec<Var> = stepped
        .trainable_vars()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let mut sgd = candle_nn::SGD::new(vars, 0.05).unwrap();
    let logits = stepped.forward(&input, Some(&mask)).unwrap();
    sgd.backward_step(&cross_entropy(&logits, &labels(&[3, 0])).unwrap())
        .unwrap();
    models.push(("hubert-cls-weighted-stepped", stepped));
    let base =
        load_dir_with_new_head(fixtures().join("wav2vec2-ctc-stable"), four_labels()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let new_head = Wav2Vec2Model::from_checkpoint(&base, &Device::Cpu, Some(&mut rng)).unwrap();
    models.push(("wav2vec2-stable-new-classifier", new_head));
    models.push(("hubert-tiny-ctc", tiny(Family::Hubert, ctc_head(), 1)));
    models.push((
        "wav2vec2-tiny-cls",
        tiny(Family::Wav2Vec2, four_labels(), 2),
    ));
    let mut bn_config = Preset::Tiny.config(Family::Hubert).unwrap();
    bn_config.conv_pos_batch_norm = true;
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let bn =
        Wav2Vec2Model::from_scratch(&bn_config, four_labels(), &Device::Cpu, &mut rng).unwrap();
    let before = bn.forward(&input, Some(&mask)).unwrap();
    let mut step_rng = ChaCha8Rng::seed_from_u64(0);
    bn.forward_t(&input, Some(&mask), Mode::Train { rng: &mut step_rng })
        .unwrap();
    let after = bn.forward(&input, Some(&mask)).unwrap();
    assert!(
        max_abs_diff(&before, &after) > 0.0,
        "running statistics updated"
    );
    models.push(("hubert-tiny-batch-norm", bn));

    for (name, model) in &models {
        let dir = root.join(name);
        model.save_dir(&dir).unwrap();
        let logits = model.forward(&input, Some(&mask)).unwrap();
        logits.write_npy(dir.join("logits.npy")).unwrap();
        let ckpt = load_dir(&dir).unwrap();
        assert_eq!(&ckpt.head, model.head(), "{name}");
        assert_eq!(&ckpt.config, model.config(), "{name}");
        let back = Wav2Vec2Model::new(&ckpt).unwrap();
        let d = max_abs_diff(&logits, &back.forward(&input, Some(&mask)).unwrap());
        println!(
            "{name}: logits {:?}, max |saved - loaded| = {d:.1e}",
            logits.dims()
        );
        assert_eq!(d, 0.0, "{name}");
        let saved: HashMap<String, Tensor> =
            candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
                .unwrap()
                .into_iter()
                .collect();
        for (n, v) in model.vars() {
            assert_eq!(max_abs_diff(&saved[&n], v.as_tensor()), 0.0, "{name}: {n}");
        }
        if name.contains("batch-norm") {
            let t = &saved["hubert.encoder.pos_conv_embed.batch_norm.num_batches_tracked"];
            assert_eq!(t.dtype(), DType::I64);
            assert_eq!(t.to_scalar::<i64>().unwrap(), 1);
        }
    }
    if let Some(dir) = keep {
        println!("saved under {}", dir.display());
    }
}

#[test]
fn a_model_rebuilds_from_its_varmap() {
    let (input, mask) = batch();
    let model = tiny(Family::Hubert, four_labels(), 9);
    let shared = Wav2Vec2Model::from_varmap(
        model.varmap(),
        model.config(),
        model.head().clone(),
        true,
        &Device::Cpu,
    )
    .unwrap();
    let a = model.forward(&input, Some(&mask)).unwrap();
    assert_eq!(
        max_abs_diff(&a, &shared.forward(&input, Some(&mask)).unwrap()),
        0.0
    );

    // An empty map names what is missing, in full.
    let e = Wav2Vec2Model::from_varmap(
        &candle_nn::VarMap::new(),
        model.config(),
        model.head().clone(),
        true,
        &Device::Cpu,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::MissingTensor { name } if name.starts_with("hubert.feature_extractor")),
        "{e}"
    );
}
