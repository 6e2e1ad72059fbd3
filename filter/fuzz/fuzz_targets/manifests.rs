//! Arbitrary text as a manifest file, through meshroute's whole pure pipeline (YAML, decoding,
//! references, compilation, the filter's own table compiler): diagnostics naming the file,
//! never a panic, and never a table that validation passed but the filter refuses.
//!
//! meshroute is a binary crate; its modules are included here as they are.

#![no_main]
#![allow(dead_code, unused_imports)]

#[path = "../../../controller-stub/src/compile.rs"]
mod compile;
#[path = "../../../controller-stub/src/decode.rs"]
mod decode;
#[path = "../../../controller-stub/src/diag.rs"]
mod diag;
#[path = "../../../controller-stub/src/load.rs"]
mod load;
#[path = "../../../controller-stub/src/model.rs"]
mod model;
#[path = "../../../controller-stub/src/pipeline.rs"]
mod pipeline;
#[path = "../../../controller-stub/src/protocol.rs"]
mod protocol;
#[path = "../../../controller-stub/src/reader.rs"]
mod reader;
#[path = "../../../controller-stub/src/resolve.rs"]
mod resolve;
#[path = "../../../controller-stub/src/route.rs"]
mod route;
#[path = "../../../controller-stub/src/route_filters.rs"]
mod route_filters;
#[path = "../../../controller-stub/src/shadow.rs"]
mod shadow;
#[path = "../../../controller-stub/src/syntax.rs"]
mod syntax;
#[path = "../../../controller-stub/src/typo.rs"]
mod typo;
#[path = "../../../controller-stub/src/yaml.rs"]
mod yaml;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Files that are not UTF-8 are refused by the loader before any of this.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let files = [load::SourceFile { path: "fuzz.yaml".into(), text: text.to_owned() }];
    // What does not validate is left out; what is left compiles into a table the filter takes.
    match pipeline::build_files(&files, Vec::new(), &pipeline::LastGood::default(), "default") {
        Ok(build) => {
            let json = serde_json::to_vec(&build.table).unwrap_or_default();
            if let Err(e) = meshroute_filter::table::RouteTable::from_json(&json) {
                panic!("a table meshroute built is refused by the filter: {e}");
            }
            for d in &build.diagnostics {
                assert!(d.file.as_os_str() == "fuzz.yaml", "a diagnostic that names no file: {d}");
            }
        }
        Err(errors) => panic!("files already read cannot fail to build: {errors:?}"),
    }
});
