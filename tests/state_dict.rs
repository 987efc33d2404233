//! Inferring an RNN from PyTorch state_dict names and shapes (missing, misshapen and
//! unexpected tensors as typed errors), and the state_dict round trip through a safetensors
//! file.

use std::collections::BTreeMap;
use std::fs;

use recur::io::{self, HostTensor};
use recur::rnn::state_dict::{config_from_state_dict, state_dict_from_params, state_dict_metadata};
use recur::{CellKind, Error, ParamLayout, RnnConfig};

#[path = "common/files.rs"]
mod files;

use files::{scratch, Rng};

fn state_dict(cfg: &RnnConfig, prefix: &str) -> (BTreeMap<String, HostTensor>, Vec<f32>) {
    let mut rng = Rng(42);
    let flat: Vec<f32> = (0..ParamLayout::new(cfg).total)
        .map(|_| rng.f32())
        .collect();
    let sd = state_dict_from_params(cfg, &flat, prefix)
        .unwrap()
        .into_iter()
        .collect();
    (sd, flat)
}

fn infer(
    sd: &BTreeMap<String, HostTensor>,
    prefix: &str,
    nl: Option<CellKind>,
) -> recur::Result<(RnnConfig, Vec<f32>)> {
    config_from_state_dict(sd, prefix, nl, &BTreeMap::new())
}

#[test]
fn state_dict_infers_every_cell_kind() {
    for cell in [CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh] {
        for bidir in [false, true] {
            for bias in [true, false] {
                for layers in [1, 3] {
                    let cfg = RnnConfig::new(cell, 5, 6)
                        .layers(layers)
                        .bidirectional(bidir)
                        .bias(bias);
                    let (sd, flat) = state_dict(&cfg, "");
                    let (got, got_flat) = infer(&sd, "", None).unwrap();
                    assert_eq!(got, cfg);
                    assert_eq!(got_flat, flat);
                }
            }
        }
    }
}

#[test]
fn state_dict_names_and_shapes_are_pytorchs() {
    let cfg = RnnConfig::new(CellKind::Lstm, 3, 4)
        .layers(2)
        .bidirectional(true);
    let (sd, _) = state_dict(&cfg, "lstm.");
    let shape = |n: &str| sd[n].shape.clone();
    assert_eq!(sd.len(), 16);
    assert_eq!(shape("lstm.weight_ih_l0"), [16, 3]);
    assert_eq!(shape("lstm.weight_hh_l0_reverse"), [16, 4]);
    assert_eq!(shape("lstm.weight_ih_l1"), [16, 8]);
    assert_eq!(shape("lstm.bias_hh_l1_reverse"), [16]);
    let gru = RnnConfig::new(CellKind::Gru, 2, 5).bias(false);
    let (sd, _) = state_dict(&gru, "");
    assert_eq!(
        sd.keys().collect::<Vec<_>>(),
        ["weight_hh_l0", "weight_ih_l0"]
    );
    assert_eq!(sd["weight_ih_l0"].shape, [15, 2]);
}

#[test]
fn state_dict_prefix_selects_one_module() {
    let lstm = RnnConfig::new(CellKind::Lstm, 4, 3);
    let gru = RnnConfig::new(CellKind::Gru, 3, 2).layers(2);
    let (mut sd, lstm_flat) = state_dict(&lstm, "encoder.rnn.");
    let (g, gru_flat) = state_dict(&gru, "decoder.rnn.");
    sd.extend(g);
    sd.insert(
        "fc.weight".into(),
        HostTensor::new(vec![2, 3], vec![0.0; 6]).unwrap(),
    );
    sd.insert(
        "encoder.rnn.extra_buffer".into(),
        HostTensor::new(vec![1], vec![0.0]).unwrap(),
    );
    let (c, f) = infer(&sd, "encoder.rnn.", None).unwrap();
    assert_eq!((c, f), (lstm, lstm_flat));
    let (c, f) = infer(&sd, "decoder.rnn.", None).unwrap();
    assert_eq!((c, f), (gru, gru_flat));

    // No RNN tensors under the prefix: the error lists names and suggests prefixes.
    match infer(&sd, "", None) {
        Err(Error::InvalidConfig(msg)) => {
            assert!(msg.contains("decoder.rnn.bias_hh_l0"), "{msg}");
            assert!(msg.contains("\"encoder.rnn.\""), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    match infer(&sd, "encoder.rnn", None) {
        Err(Error::InvalidConfig(msg)) => assert!(msg.contains("encoder.rnn."), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        infer(&BTreeMap::new(), "", None),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn state_dict_missing_tensor() {
    let cfg = RnnConfig::new(CellKind::Gru, 4, 3)
        .layers(2)
        .bidirectional(true);
    for name in [
        "rnn.weight_hh_l1_reverse",
        "rnn.bias_ih_l1",
        "rnn.weight_hh_l0",
        "rnn.weight_ih_l0",
        "rnn.weight_ih_l1",
    ] {
        let (mut sd, _) = state_dict(&cfg, "rnn.");
        sd.remove(name).unwrap();
        match infer(&sd, "rnn.", None) {
            // Removing weight_ih_l1 makes a one-layer GRU with left-over layer-1 tensors.
            Err(Error::UnexpectedTensor(n)) if name == "rnn.weight_ih_l1" => {
                assert!(n.starts_with("rnn.") && n.contains("_l1"), "{n}")
            }
            Err(Error::MissingTensor(n)) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    // A gap in the layers.
    let (mut sd, _) = state_dict(&cfg.clone().layers(3), "");
    for n in [
        "weight_ih_l1",
        "weight_hh_l1",
        "bias_ih_l1",
        "bias_hh_l1",
        "weight_ih_l1_reverse",
    ] {
        sd.remove(n);
    }
    assert!(matches!(infer(&sd, "", None), Err(Error::MissingTensor(n)) if n == "weight_ih_l1"));
}

#[test]
fn state_dict_wrong_shape() {
    let cfg = RnnConfig::new(CellKind::Lstm, 4, 3).layers(2);
    let (sd0, _) = state_dict(&cfg, "");

    let mut sd = sd0.clone();
    sd.insert(
        "bias_hh_l1".into(),
        HostTensor::new(vec![11], vec![0.0; 11]).unwrap(),
    );
    match infer(&sd, "", None) {
        Err(Error::Shape {
            what,
            expected,
            got,
        }) => {
            assert_eq!(what, "bias_hh_l1");
            assert_eq!((expected, got), (vec![12], vec![11]));
        }
        other => panic!("{other:?}"),
    }

    // Layer 1 reads H features, not I.
    let mut sd = sd0.clone();
    sd.insert(
        "weight_ih_l1".into(),
        HostTensor::new(vec![12, 4], vec![0.0; 48]).unwrap(),
    );
    assert!(
        matches!(infer(&sd, "", None), Err(Error::Shape { what, .. }) if what == "weight_ih_l1")
    );

    // Rows that are no multiple of H, and a vector where a matrix belongs.
    let mut sd = sd0.clone();
    sd.insert(
        "weight_ih_l0".into(),
        HostTensor::new(vec![10, 4], vec![0.0; 40]).unwrap(),
    );
    assert!(matches!(infer(&sd, "", None), Err(Error::InvalidConfig(_))));
    let mut sd = sd0.clone();
    sd.insert(
        "weight_hh_l0".into(),
        HostTensor::new(vec![36], vec![0.0; 36]).unwrap(),
    );
    assert!(matches!(infer(&sd, "", None), Err(Error::InvalidConfig(_))));
    let mut sd = sd0.clone();
    sd.insert(
        "weight_hh_l0".into(),
        HostTensor::new(vec![12, 0], vec![]).unwrap(),
    );
    assert!(matches!(infer(&sd, "", None), Err(Error::InvalidConfig(_))));

    // Data that does not fill the shape (the fields are public).
    let mut sd = sd0;
    sd.get_mut("bias_ih_l0").unwrap().data.pop();
    assert!(matches!(infer(&sd, "", None), Err(Error::Shape { .. })));
}

#[test]
fn state_dict_unexpected_tensor() {
    let cfg = RnnConfig::new(CellKind::RnnTanh, 2, 3);
    for extra in [
        "weight_ih_l0_reverse2",
        "bias_xx_l0",
        "weight_ih_l01",
        "bias_hh_l3",
    ] {
        let (mut sd, _) = state_dict(&cfg, "m.");
        sd.insert(
            format!("m.{extra}"),
            HostTensor::new(vec![3], vec![0.0; 3]).unwrap(),
        );
        match infer(&sd, "m.", None) {
            Err(Error::UnexpectedTensor(n)) => assert_eq!(n, format!("m.{extra}")),
            // weight_ih_l01 counts as a layer, so layer 1 is missing.
            Err(Error::MissingTensor(n)) if extra == "weight_ih_l01" => {
                assert_eq!(n, "m.weight_ih_l1")
            }
            other => panic!("{extra}: {other:?}"),
        }
    }
    // Tensors elsewhere, or not named like RNN parameters, are ignored.
    let (mut sd, _) = state_dict(&cfg, "m.");
    for n in [
        "m.weight",
        "m.sub.weight_ih_l0",
        "other.bias_ih_l5",
        "m.running_mean_l0",
    ] {
        sd.insert(n.into(), HostTensor::new(vec![1], vec![0.0]).unwrap());
    }
    assert!(infer(&sd, "m.", None).is_ok());
}

#[test]
fn state_dict_infers_lstm_projection() {
    // weight_hr_l{k} [P, H] makes weight_hh [4H, P] and layer k>0 input D*P.
    let cfg = RnnConfig::new(CellKind::Lstm, 3, 5)
        .layers(2)
        .bidirectional(true)
        .proj_size(2);
    let (sd, flat) = state_dict(&cfg, "");
    assert_eq!(sd["weight_hh_l0"].shape, vec![20, 2]);
    assert_eq!(sd["weight_ih_l1"].shape, vec![20, 4]);
    assert_eq!(sd["weight_hr_l1_reverse"].shape, vec![2, 5]);
    let (got, got_flat) = infer(&sd, "", None).unwrap();
    assert_eq!(got, cfg);
    assert_eq!(got_flat, flat);

    // A weight_hr beside a weight_hh that is [4H, H] is a shape error, not a silent misread.
    let plain = RnnConfig::new(CellKind::Lstm, 3, 4);
    let (mut sd, _) = state_dict(&plain, "");
    sd.insert(
        "weight_hr_l0".into(),
        HostTensor::new(vec![2, 4], vec![0.0; 8]).unwrap(),
    );
    match infer(&sd, "", None) {
        Err(Error::Shape { what, .. }) => assert!(what.contains("weight_hh_l0"), "{what}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn state_dict_nonlinearity_from_flag_then_metadata_then_tanh() {
    let cfg = RnnConfig::new(CellKind::RnnRelu, 2, 3).layers(2);
    let (sd, flat) = state_dict(&cfg, "");
    let meta = |v: &str| {
        let mut m = BTreeMap::new();
        m.insert("nonlinearity".to_string(), v.to_string());
        m
    };
    let cell = |nl: Option<CellKind>, m: &BTreeMap<String, String>| {
        config_from_state_dict(&sd, "", nl, m).map(|(c, _)| c.cell)
    };
    let none = BTreeMap::new();
    // Default tanh.
    assert_eq!(cell(None, &none).unwrap(), CellKind::RnnTanh);
    // Metadata.
    assert_eq!(cell(None, &meta("relu")).unwrap(), CellKind::RnnRelu);
    assert_eq!(cell(None, &meta("tanh")).unwrap(), CellKind::RnnTanh);
    assert!(matches!(
        cell(None, &meta("sigmoid")),
        Err(Error::InvalidConfig(_))
    ));
    // The flag wins over metadata.
    assert_eq!(
        cell(Some(CellKind::RnnTanh), &meta("relu")).unwrap(),
        CellKind::RnnTanh
    );
    assert_eq!(
        cell(Some(CellKind::RnnRelu), &meta("tanh")).unwrap(),
        CellKind::RnnRelu
    );
    // A flag that contradicts the shapes.
    assert!(matches!(
        cell(Some(CellKind::Lstm), &none),
        Err(Error::InvalidConfig(_))
    ));
    // state_dict_metadata records the nonlinearity so a save/load round trip keeps it.
    let (c, f) = config_from_state_dict(&sd, "", None, &state_dict_metadata(&cfg)).unwrap();
    assert_eq!((c, f), (cfg, flat));

    // Gated cells ignore the metadata key; a matching flag is fine, a wrong one is not.
    let lstm = RnnConfig::new(CellKind::Lstm, 2, 3);
    let (sd, _) = state_dict(&lstm, "");
    assert!(state_dict_metadata(&lstm).is_empty());
    let ok = config_from_state_dict(&sd, "", Some(CellKind::Lstm), &meta("relu")).unwrap();
    assert_eq!(ok.0, lstm);
    for wrong in [CellKind::Gru, CellKind::RnnRelu, CellKind::RnnTanh] {
        assert!(matches!(
            config_from_state_dict(&sd, "", Some(wrong), &none),
            Err(Error::InvalidConfig(_))
        ));
    }
}

#[test]
fn state_dict_round_trips_through_a_safetensors_file() {
    let dir = scratch("sd-file");
    let path = dir.join("gru.safetensors");
    let cfg = RnnConfig::new(CellKind::RnnRelu, 7, 5)
        .layers(2)
        .bidirectional(true);
    let mut rng = Rng(3);
    let flat: Vec<f32> = (0..ParamLayout::new(&cfg).total)
        .map(|_| rng.f32())
        .collect();
    let sd = state_dict_from_params(&cfg, &flat, "rnn.").unwrap();
    io::save(&path, &sd, &state_dict_metadata(&cfg)).unwrap();
    let (tensors, meta) = io::load(&path).unwrap();
    let (got, got_flat) = config_from_state_dict(&tensors, "rnn.", None, &meta).unwrap();
    assert_eq!(got, cfg);
    assert_eq!(got_flat, flat);
    assert!(matches!(
        state_dict_from_params(&cfg, &flat[1..], "rnn."),
        Err(Error::Shape { .. })
    ));
    fs::remove_dir_all(&dir).unwrap();
}

/// A small file that claims huge sizes: refused on the shapes before anything the size of
/// the claimed model is allocated (here it would be 16 GiB).
#[test]
fn state_dict_with_huge_claimed_sizes_is_refused_without_allocating() {
    let mut sd = BTreeMap::new();
    sd.insert(
        "weight_ih_l0".to_string(),
        HostTensor::new(vec![65536, 1], vec![0.0; 65536]).unwrap(),
    );
    sd.insert(
        "weight_hh_l0".to_string(),
        HostTensor::new(vec![1, 65536], vec![0.0; 65536]).unwrap(),
    );
    match config_from_state_dict(&sd, "", None, &BTreeMap::new()) {
        Err(Error::Shape { what, .. }) => assert!(what.contains("weight_hh_l0"), "{what}"),
        other => panic!("{:?}", other.map(|(c, _)| c)),
    }
    // Layer indices are plain decimal: `l01` is not layer 1.
    sd.insert(
        "weight_ih_l01".to_string(),
        HostTensor::new(vec![1], vec![0.0]).unwrap(),
    );
    assert!(config_from_state_dict(&sd, "", None, &BTreeMap::new()).is_err());
}
