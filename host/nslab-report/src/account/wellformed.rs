//! Property tests: whatever text a scenario chose, every format the account is written in
//! stays well-formed, read back by a real XML parser (roxmltree) as the oracle.

use proptest::prelude::*;

use super::{
    escape, graph, html, junit, xml_forbidden, xml_text, CheckAccount, RunAccount, StepAccount,
};
use nslab_lab::{LinkKind, LinkNode, NsNode, Topology};

/// Arbitrary Unicode, with the characters XML forbids, markup and CDATA ends thrown in often.
fn hostile() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '\u{0}', '\u{1}', '\u{8}', '\u{b}', '\u{c}', '\u{1b}', '\u{1f}', '\u{7f}', '\u{85}',
        '\u{fffe}', '\u{ffff}', '\u{202e}', '<', '>', '&', '"', '\'', ']', '\r', '\n', '\t',
    ]);
    prop::collection::vec(prop_oneof![any::<char>(), special], 0..48)
        .prop_map(|chars| chars.into_iter().collect())
}

fn account_with(text: &str) -> RunAccount {
    RunAccount {
        name: text.to_string(),
        description: text.to_string(),
        steps: vec![StepAccount {
            name: text.to_string(),
            t: 0.1,
            checks: vec![
                CheckAccount {
                    name: text.to_string(),
                    passed: false,
                    detail: text.to_string(),
                    t: 0.2,
                },
                CheckAccount {
                    name: "honest".into(),
                    passed: true,
                    detail: "fine".into(),
                    t: 0.3,
                },
            ],
        }],
        refusals: vec![text.to_string()],
        warnings: vec![text.to_string()],
        errors: vec![text.to_string()],
        attachments: vec![(text.to_string(), 1)],
        topology: Topology {
            namespaces: vec![NsNode {
                name: text.to_string(),
                forwarding: true,
                routes: vec![text.to_string()],
            }],
            links: vec![LinkNode {
                ns: text.to_string(),
                name: text.to_string(),
                kind: LinkKind::Veth,
                peer: None,
                master: None,
                addresses: vec![text.to_string()],
                shaping: Some(text.to_string()),
                up: true,
            }],
        },
        ..RunAccount::default()
    }
}

fn parses(what: &str, xml: &str) -> Result<(), TestCaseError> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(xml, options)
        .map(|_| ())
        .map_err(|e| TestCaseError::fail(format!("{what} does not parse: {e}\n{xml}")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn escaped_text_is_element_text_and_attribute_value(text in hostile()) {
        let e = escape(&text);
        let xml = format!("<a t=\"{e}\">{e}</a>");
        let doc = roxmltree::Document::parse(&xml)
            .map_err(|err| TestCaseError::fail(format!("{err}: {xml:?}")))?;
        // Element text comes back as it was, but for what XML cannot carry (U+FFFD) and the
        // parser's own line-end normalization.
        let expected: String = text
            .chars()
            .map(|c| match c {
                c if (c.is_control() && !matches!(c, '\n' | '\t')) || xml_forbidden(c) => '\u{fffd}',
                c => c,
            })
            .collect();
        prop_assert_eq!(doc.root_element().text().unwrap_or(""), expected.as_str());
    }

    #[test]
    fn junit_parses_whatever_the_scenario_wrote_and_keeps_the_honest_case(text in hostile()) {
        let (hostile, honest) = (account_with(&text), account_with("honest run"));
        let xml = junit::xml(&[(&hostile, Some(text.as_str())), (&honest, None)]);
        parses("junit.xml", &xml)?;
        let doc = roxmltree::Document::parse(&xml).expect("parsed above");
        let suites = doc.descendants().filter(|n| n.has_tag_name("testsuite")).count();
        prop_assert_eq!(suites, 2);
        // The hostile detail is there, inert: what XML could not carry is shown escaped.
        let shown = xml_text(&text).replace("\r\n", "\n").replace('\r', "\n");
        let found = doc
            .descendants()
            .filter(|n| n.has_tag_name("failure"))
            .any(|n| n.attribute("message").is_some());
        prop_assert!(found || shown.is_empty());
    }

    #[test]
    fn the_report_page_and_its_picture_parse_whatever_the_scenario_wrote(text in hostile()) {
        let account = account_with(&text);
        let svg = graph::render(&account.topology, graph::Format::Svg);
        parses("topology.svg", &svg)?;
        parses("index.html", &html::run_page(&account, &svg))?;
        let listed = super::Listed {
            dir: text.clone(),
            shard: Some(text.clone()),
            account,
        };
        parses("the test index", &html::test_page(&[listed]))?;
    }
}
