//! Whatever an API client sends, the service answers 202 or a 4xx, never
//! fails or loses what it accepted: a property test over request bodies
//! (random bytes, random JSON, and task specs with random fields and
//! values), against a real service on loopback.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use proptest::prelude::*;
use serde_json::{json, Value};
use support::TestService;

fn service() -> &'static TestService {
    static SERVICE: OnceLock<TestService> = OnceLock::new();
    SERVICE.get_or_init(|| {
        TestService::start("bodies", |config| {
            config.max_body_bytes = 16_384;
            config.max_tasks_per_request = 50;
        })
    })
}

/// The ids the property's cases got a 202 for.
fn accepted() -> &'static Mutex<BTreeSet<u64>> {
    static ACCEPTED: OnceLock<Mutex<BTreeSet<u64>>> = OnceLock::new();
    ACCEPTED.get_or_init(|| Mutex::new(BTreeSet::new()))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z_]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A task spec with each field present or not, right or wrong.
fn task_like() -> impl Strategy<Value = Value> {
    (
        prop_oneof![(0u64..200).prop_map(|n| json!(n)), json_value()],
        prop_oneof![
            (0u64..5_000, 0u64..5_000).prop_map(|(c, m)| json!({"cpu_milli": c, "memory_mib": m})),
            json_value(),
        ],
        prop::option::of(json_value()),
        prop::option::of(prop_oneof![
            Just(json!({"count": 1, "milli_per_gpu": 500})),
            json_value()
        ]),
        prop::option::of((0u64..300).prop_map(|p| json!(p))),
    )
        .prop_map(|(id, request, extra, gpu, priority)| {
            let mut task = serde_json::Map::new();
            task.insert("id".into(), id);
            task.insert("request".into(), request);
            task.insert("config".into(), json!({"command": "true"}));
            if let Some(gpu) = gpu {
                task.insert("gpu".into(), gpu);
            }
            if let Some(priority) = priority {
                task.insert("priority".into(), priority);
            }
            if let Some(extra) = extra {
                task.insert("extra".into(), extra);
            }
            Value::Object(task)
        })
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        json_value().prop_map(|v| v.to_string()),
        task_like().prop_map(|v| v.to_string()),
        prop::collection::vec(task_like(), 0..8).prop_map(|v| Value::Array(v).to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_body_gets_202_or_a_4xx_and_nothing_accepted_is_lost(body in body()) {
        let service = service();
        let (status, answer) = service.call("POST", "/v1/tasks", None, Some(&body));
        prop_assert!(
            matches!(status, 202 | 400 | 409 | 413),
            "{status} for {body:?}: {answer}"
        );
        let answer: Value = serde_json::from_str(&answer).unwrap();
        if status == 202 {
            let ids = answer["accepted"].as_array().unwrap();
            accepted().lock().unwrap().extend(ids.iter().map(|id| id.as_u64().unwrap()));
        } else {
            prop_assert!(answer["error"].is_string(), "{answer}");
        }
        // Still up, and holding exactly what it accepted.
        let (status, list) = service.call("GET", "/v1/tasks", None, None);
        prop_assert_eq!(status, 200);
        let list: Value = serde_json::from_str(&list).unwrap();
        let held: BTreeSet<u64> = list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect();
        prop_assert_eq!(&held, &*accepted().lock().unwrap());
    }
}
