//! Every input the fuzz targets were seeded with or found (fuzz/seeds, fuzz/corpus), fed to
//! the decoder it was found for: none panics, and each refusal says what is wrong. New finds
//! of `fuzz/run.sh` are replayed on every run from then on.

use std::path::Path;

use orderpipe::untrusted::TARGETS;

#[test]
fn every_corpus_input_is_decoded_or_refused_with_a_reason_and_none_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, decode) in TARGETS {
        let mut inputs = 0;
        let mut accepted = 0;
        for folder in ["seeds", "corpus"] {
            let Ok(dir) = std::fs::read_dir(root.join(folder).join(name)) else {
                continue;
            };
            for entry in dir {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| decode(&data));
                match outcome {
                    Err(_) => panic!("{name}: {} makes the decoder panic", path.display()),
                    Ok(Ok(())) => accepted += 1,
                    Ok(Err(reason)) => assert!(
                        reason.trim().len() >= 5,
                        "{name}: {} is refused without a reason: {reason:?}",
                        path.display()
                    ),
                }
                inputs += 1;
            }
        }
        // Every target has seeds, and the seeds are valid inputs.
        assert!(inputs > 0, "{name}: no corpus");
        assert!(
            accepted > 0,
            "{name}: not one input of {inputs} is accepted"
        );
    }
}
