//! Models as files (issue 11): a `SeqModel` saved alone is the state_dict of the equivalent
//! PyTorch module and loads from one. Fixtures: `scripts/make_model_fixtures.py` (PyTorch
//! modules saved with `save_file(model.state_dict())`, their outputs; and a model written by
//! recur, loaded in PyTorch with `load_state_dict(strict=True)`, run there).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{assert_close, gpu};
use recur::io::HostTensor;
use recur::nn::{Readout, SeqInput, SeqModel, SeqModelConfig, SeqOutput, TokenIds};
use recur::train::{Batch, Targets, TrainConfig, TrainMode, Trainer};
use recur::{rng::Rng, CellKind, Error, Gpu, LoadOptions, RnnConfig};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/model")
        .join(name)
}

type Io = (BTreeMap<String, HostTensor>, BTreeMap<String, String>);

fn io_of(case: &str) -> Io {
    recur::io::load(&fixture(&format!("{case}.io.safetensors"))).unwrap()
}

fn f64s(t: &HostTensor) -> Vec<f64> {
    t.data.iter().map(|&v| f64::from(v)).collect()
}

/// Runs `model` on the fixture's input and compares output, hn and cn with PyTorch's.
fn check_against_torch(gpu: &Gpu, case: &str, model: &SeqModel, io: &Io) {
    let (t, _) = io;
    let input = &t["input"];
    let out: SeqOutput = match model.cfg.vocab {
        Some(v) => {
            let ids: Vec<u32> = input.data.iter().map(|&x| x as u32).collect();
            let ids = TokenIds::new(gpu, "ids", &input.shape, &ids, v).unwrap();
            model
                .forward(gpu, SeqInput::Tokens(&ids), None, None)
                .unwrap()
        }
        None => {
            let x = gpu.upload(input).unwrap();
            model.forward(gpu, SeqInput::Dense(&x), None, None).unwrap()
        }
    };
    assert_eq!(out.out.shape, t["output"].shape, "{case}: output shape");
    let got = gpu.download(&out.out).unwrap();
    assert_close(
        &format!("{case} output"),
        &got.data,
        &f64s(&t["output"]),
        1e-5,
    );
    let hn = gpu.download(&out.hn).unwrap();
    assert_close(&format!("{case} hn"), &hn.data, &f64s(&t["hn"]), 1e-5);
    if let Some(cn) = &out.cn {
        let cn = gpu.download(cn).unwrap();
        assert_close(&format!("{case} cn"), &cn.data, &f64s(&t["cn"]), 1e-5);
    }
}

/// A PyTorch module's `state_dict` loads (the readout and nonlinearity, which its tensors do
/// not record, given as options) and runs as it does in PyTorch.
#[test]
fn torch_state_dicts_load_and_run_as_in_torch() {
    let Some(gpu) = gpu() else { return };
    let cases = [
        ("lm_lstm", LoadOptions::new()),
        (
            "cls_gru_bidir",
            LoadOptions::new().readout(Readout::LastStep),
        ),
        (
            "reg_rnn_relu",
            LoadOptions::new()
                .readout(Readout::LastStep)
                .nonlinearity(CellKind::RnnRelu),
        ),
    ];
    for (case, opts) in cases {
        let path = fixture(&format!("{case}.safetensors"));
        let model = SeqModel::load(&gpu, &path, &opts).unwrap();
        let io = io_of(case);
        assert_eq!(model.cfg.readout.name(), io.1["readout"], "{case}");
        check_against_torch(&gpu, case, &model, &io);
    }
}

/// What `save` writes is the PyTorch file again: the same names, shapes and values, and
/// the readout and nonlinearity in the metadata, so that loading needs no options.
#[test]
fn save_writes_the_torch_state_dict_and_loads_back() {
    let Some(gpu) = gpu() else { return };
    let dir = std::env::temp_dir().join(format!("recur-model-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (case, opts) in [
        ("lm_lstm", LoadOptions::new()),
        (
            "reg_rnn_relu",
            LoadOptions::new()
                .readout(Readout::LastStep)
                .nonlinearity(CellKind::RnnRelu),
        ),
    ] {
        let src = fixture(&format!("{case}.safetensors"));
        let model = SeqModel::load(&gpu, &src, &opts).unwrap();
        let out = dir.join(format!("{case}.safetensors"));
        model.save(&gpu, &out).unwrap();
        let (theirs, _) = recur::io::load(&src).unwrap();
        let (ours, meta) = recur::io::load(&out).unwrap();
        assert_eq!(ours, theirs, "{case}: names, shapes or values differ");
        assert_eq!(meta["readout"], model.cfg.readout.name());
        let again = SeqModel::load(&gpu, &out, &LoadOptions::new()).unwrap();
        assert_eq!(
            again.cfg, model.cfg,
            "{case}: the file alone gives the config"
        );
        check_against_torch(&gpu, case, &again, &io_of(case));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A model trained in recur (from_recur.safetensors, written by `write_from_recur_fixture`)
/// loads into the PyTorch module with `load_state_dict(strict=True)` (the script would fail
/// otherwise) and gives there what it gives here.
#[test]
fn a_model_trained_in_recur_runs_in_torch_as_in_recur() {
    let Some(gpu) = gpu() else { return };
    let model = SeqModel::load(
        &gpu,
        &fixture("from_recur.safetensors"),
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(model.cfg.readout, Readout::LastStep);
    check_against_torch(&gpu, "from_recur", &model, &io_of("from_recur"));
}

/// Writes tests/fixtures/model/from_recur.safetensors when RECUR_WRITE_MODEL_FIXTURES=1
/// (then run scripts/make_model_fixtures.py): a dense LSTM classifier on the last step,
/// trained 30 steps in recur on independent batches.
#[test]
fn write_from_recur_fixture() {
    if std::env::var("RECUR_WRITE_MODEL_FIXTURES").as_deref() != Ok("1") {
        return;
    }
    let Some(gpu) = gpu() else { return };
    let cfg = SeqModelConfig::new(None, RnnConfig::new(CellKind::Lstm, 3, 6), 2).last_step();
    let model = SeqModel::init(&gpu, cfg, &mut Rng::new(11)).unwrap();
    let mut t = Trainer::new(&gpu, model, TrainConfig::default(), TrainMode::Independent).unwrap();
    let mut rng = Rng::new(12);
    for _ in 0..30 {
        let x: Vec<f32> = (0..5 * 4 * 3).map(|_| rng.normal() as f32).collect();
        let y: Vec<f32> = (0..4 * 2).map(|_| rng.normal() as f32).collect();
        let x = gpu.tensor("x", &[5, 4, 3], &x).unwrap();
        let y = gpu.tensor("y", &[4, 2], &y).unwrap();
        t.step(
            &gpu,
            &[Batch {
                input: SeqInput::Dense(&x),
                targets: Targets::Dense(&y),
            }],
        )
        .unwrap();
    }
    t.wait(&gpu).unwrap();
    t.model
        .save(&gpu, &fixture("from_recur.safetensors"))
        .unwrap();
}

/// Like `load_state_dict(strict=True)`: a tensor the model does not have, or one it needs
/// and the file lacks, is an error naming it.
#[test]
fn load_is_strict_about_names() {
    let Some(gpu) = gpu() else { return };
    let (mut t, meta) = recur::io::load(&fixture("lm_lstm.safetensors")).unwrap();
    let opts = LoadOptions::new();
    let mut extra = t.clone();
    extra.insert(
        "decoder.weight".into(),
        HostTensor::zeros(vec![2, 2]).unwrap(),
    );
    match SeqModel::from_state_dict(&gpu, &extra, &meta, &opts) {
        Err(Error::UnexpectedTensor(n)) => assert_eq!(n, "decoder.weight"),
        other => panic!("{other:?}"),
    }
    t.remove("head.bias");
    match SeqModel::from_state_dict(&gpu, &t, &meta, &opts) {
        Err(Error::MissingTensor(n)) => assert_eq!(n, "head.bias"),
        other => panic!("{other:?}"),
    }
}
