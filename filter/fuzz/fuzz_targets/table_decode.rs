//! Arbitrary bytes as a published route table: refused with an error or compiled, never a
//! panic; a table that compiles routes a few requests on each of its frontends.

#![no_main]

use libfuzzer_sys::fuzz_target;
use meshroute_filter::decision::decide;
use meshroute_filter::request::Request;
use meshroute_filter::table::RouteTable;

fuzz_target!(|data: &[u8]| {
    let Ok(table) = RouteTable::from_json(data) else { return };
    let headers = [("x-version".to_owned(), "v2".to_owned()), ("content-type".to_owned(), "application/grpc".to_owned())];
    for frontend in table.frontends() {
        for (method, path) in [("GET", "/"), ("POST", "/pkg.Svc/Method?x=1"), ("GET", "/a/b/../c?q=%zz&q=2#f"), ("", "")] {
            let request = Request { method, path_and_query: path, headers: &headers };
            let _ = decide(&table, Some(frontend), &request, u64::MAX, |_: &str| Some("application/grpc"));
        }
    }
});
