//! The Count screen's flows (issue 23), action by action: F1 from an
//! empty basket, a list and a zone set up, the start posted under an id
//! made before it (and, in doubt, looked up before it is posted again),
//! the live view polled, finishing, accepting (asked first; twice is
//! refused without a call), a session opened by its typed id, and the
//! agent's refusals and silences shown as sentences.

use tally_agent_api::{
    ApiError, CountAccepted, CountAdjustment, CountFindings, CountReportView, CountSessionRequest,
    CountSessionView, CountedItem, ErrorBody, VarianceItem,
};
use tally_sync::EventId;
use uuid::Uuid;

use super::screens::text;
use super::{epc_of, gtin_of, Harness, GUM, PEN};
use crate::state::{shown, Action, CountCall, CountView, Dialog, Effect, Key, Level, Screen};

const MISSING: &str = "3074257BF7194E4000001A85";
const SOLD: &str = "3074257BF7194E4000001A86";

/// A session counting: `items` as (GTIN, name, counted).
pub fn live(id: &str, items: &[(&str, Option<&str>, u64)], tags: u64) -> CountSessionView {
    CountSessionView {
        session_id: id.into(),
        status: "counting".into(),
        zone: Some("aisle 3".into()),
        gtins: Some(vec![gtin_of(PEN), gtin_of(GUM)]),
        started_at: "2026-12-05T10:00:00.000Z".into(),
        finished_at: None,
        reads: tags * 7,
        tags,
        unknown_tags: 1,
        out_of_scope_tags: 2,
        items: items
            .iter()
            .map(|(g, name, counted)| CountedItem {
                gtin: gtin_of(g),
                name: name.map(str::to_string),
                counted: *counted,
            })
            .collect(),
    }
}

/// Its report: pens 3 expected, 1 counted; gum 1 and 1.
pub fn report(id: &str, status: &str) -> CountReportView {
    CountReportView {
        session_id: id.into(),
        status: status.into(),
        items: vec![
            VarianceItem {
                gtin: gtin_of(PEN),
                name: Some("Pen, blue".into()),
                expected: 3,
                counted: 1,
                difference: -2,
            },
            VarianceItem {
                gtin: gtin_of(GUM),
                name: None,
                expected: 1,
                counted: 1,
                difference: 0,
            },
        ],
        epcs: CountFindings {
            sold_but_present: vec![epc_of(SOLD)],
            missing: vec![epc_of(MISSING)],
            sold_but_present_total: 1,
            missing_total: 5,
        },
        tags: 3,
        unknown_tags: 1,
        out_of_scope_tags: 2,
    }
}

/// Its acceptance: two pens removed, one of them unresolved.
pub fn accepted(id: &str) -> CountAccepted {
    CountAccepted {
        session_id: id.into(),
        status: "accepted".into(),
        adjustments: vec![CountAdjustment {
            gtin: gtin_of(PEN),
            counted: 1,
            direction: "down".into(),
            units: 1,
            unresolved: 1,
            event_id: EventId(Uuid::from_u128(99)),
        }],
        report: report(id, "accepted"),
    }
}

fn conflict(message: &str) -> ApiError {
    ApiError::Conflict(Box::new(ErrorBody::new("conflict", message)))
}

/// The single start of `effects`.
fn started(effects: &[Effect]) -> CountSessionRequest {
    match effects {
        [Effect::StartCount(r)] => r.clone(),
        other => panic!("expected one StartCount, got {other:?}"),
    }
}

fn notice(h: &Harness) -> (Level, String) {
    h.s.notice.clone().expect("a notice")
}

/// F1 from the basket: the Count screen, nothing asked yet.
fn count_screen() -> Harness {
    let mut h = Harness::new();
    assert_eq!(h.key(Key::F(1)), []);
    assert_eq!(h.s.screen, Screen::Count);
    h
}

/// A count of pens started and answered: live, `id` returned.
fn counting() -> (Harness, String) {
    let mut h = count_screen();
    h.scan(PEN);
    let req = started(&h.key(Key::Enter));
    let id = req.session_id.clone().unwrap();
    h.act(Action::CountStarted {
        session_id: id.clone(),
        result: Ok(live(&id, &[], 0)),
    });
    (h, id)
}

/// … then finished: the report shown.
fn finished() -> (Harness, String) {
    let (mut h, id) = counting();
    assert_eq!(h.key(Key::F(5)), [Effect::FinishCount(id.clone())]);
    assert_eq!(h.s.dialog, Some(Dialog::Sending));
    h.act(Action::CountFinished {
        session_id: id.clone(),
        result: Ok(report(&id, "finished")),
    });
    (h, id)
}

#[test]
fn f1_opens_the_count_screen_only_from_an_empty_basket() {
    let mut h = Harness::with_basket();
    assert_eq!(h.key(Key::F(1)), []);
    assert_eq!(h.s.screen, Screen::Basket);
    assert!(notice(&h).1.contains("open basket"));

    let mut h = Harness::new();
    h.key(Key::Ctrl('k'));
    assert_eq!(h.s.screen, Screen::Count);
    assert_eq!(h.key(Key::Esc), []);
    assert_eq!(h.s.screen, Screen::Basket);
    // F10 still quits from the Count screen.
    h.key(Key::F(1));
    assert_eq!(h.key(Key::F(10)), [Effect::Quit]);
}

#[test]
fn a_list_and_a_zone_are_set_up_and_enter_starts_them_under_one_id() {
    let mut h = count_screen();
    // A typed item goes on the list and its name is asked for.
    assert_eq!(h.scan("4006381333931"), [Effect::LookupCatalog(PEN.into())]);
    h.catalog(PEN, "Pen, blue", 129);
    // A scanned one too; scanning it again does not list it twice.
    assert_eq!(h.scan_item(GUM), [Effect::LookupCatalog(GUM.into())]);
    assert_eq!(h.scan_item(GUM), []);
    assert!(
        notice(&h).1.contains("on the list already"),
        "{:?}",
        h.s.notice
    );
    assert_eq!(h.s.count.gtins, [PEN, GUM]);
    assert!(text(&h.s).contains("Pen, blue"), "{}", text(&h.s));
    // Del removes the selected one (the gum), Up/Down select.
    h.key(Key::Delete);
    assert_eq!(h.s.count.gtins, [PEN]);
    h.scan_item(GUM);
    h.key(Key::Up);
    h.key(Key::Delete);
    assert_eq!(h.s.count.gtins, [GUM]);
    // A code that does not decode and is all digits is a misread item.
    assert_eq!(h.scan("4006381333932"), []);
    assert_eq!(notice(&h).0, Level::Error);
    // F2: the zone.
    h.key(Key::F(2));
    assert!(matches!(h.s.dialog, Some(Dialog::CountZone { .. })));
    h.typed("aisle 3");
    h.key(Key::Enter);
    assert_eq!(h.s.dialog, None);
    assert_eq!(h.s.count.zone.as_deref(), Some("aisle 3"));

    let e = h.key(Key::Enter);
    let req = started(&e);
    let id = req.session_id.clone().unwrap();
    assert_eq!(id.len(), "count-".len() + 8, "{id}");
    assert!(id.starts_with("count-"), "{id}");
    assert_eq!(req.gtins, Some(vec![GUM.to_string()]));
    assert_eq!(req.zone.as_deref(), Some("aisle 3"));
    assert_eq!(req.cashier.as_deref(), Some("cashier"));
    assert_eq!(h.s.dialog, Some(Dialog::Sending));
    // Keys wait meanwhile.
    assert_eq!(h.key(Key::Enter), []);

    h.act(Action::CountStarted {
        session_id: id.clone(),
        result: Ok(live(&id, &[], 0)),
    });
    assert_eq!(h.s.dialog, None);
    assert!(matches!(&h.s.count.view, CountView::Live(v) if v.session_id == id));
    assert!(notice(&h).1.contains("started"));
}

#[test]
fn the_whole_store_is_counted_when_nothing_is_listed() {
    let mut h = count_screen();
    let req = started(&h.key(Key::F(5)));
    assert_eq!(req.gtins, None);
    assert_eq!(req.zone, None);
}

#[test]
fn the_live_view_is_polled_once_a_second_on_the_count_screen_only() {
    let (mut h, id) = counting();
    assert_eq!(
        h.act(Action::RefreshCount),
        [Effect::LookupCount(id.clone())]
    );
    // One poll at a time.
    assert_eq!(h.act(Action::RefreshCount), []);
    h.act(Action::CountSession {
        session_id: id.clone(),
        result: Ok(live(&id, &[(PEN, Some("Pen, blue"), 4)], 6)),
    });
    let t = text(&h.s);
    for want in [
        "COUNTING",
        "Tags 6",
        "reads 42",
        "unknown tags 1",
        "off-list tags 2",
        "Pen, blue",
        "aisle 3",
    ] {
        assert!(t.contains(want), "{want} in\n{t}");
    }
    // The listed gum, not read yet, shows 0.
    assert!(t.contains(GUM), "{t}");
    // A stale answer (another session) changes nothing.
    h.act(Action::RefreshCount);
    h.act(Action::CountSession {
        session_id: "other".into(),
        result: Ok(live("other", &[], 99)),
    });
    assert!(matches!(&h.s.count.view, CountView::Live(v) if v.tags == 6));
    // An agent that does not answer: the banner says so, the view stays.
    h.act(Action::CountSession {
        session_id: id.clone(),
        result: Err(ApiError::Unreachable("refused".into())),
    });
    assert!(text(&h.s).contains("AGENT UNREACHABLE"));
    assert!(matches!(&h.s.count.view, CountView::Live(v) if v.tags == 6));

    // Away from the screen nothing is polled; back, at once.
    h.key(Key::Esc);
    assert_eq!(h.s.screen, Screen::Basket);
    assert!(notice(&h).1.contains("goes on counting"));
    assert_eq!(h.act(Action::RefreshCount), []);
    assert_eq!(h.key(Key::F(1)), [Effect::LookupCount(id.clone())]);
    // F8 does not drop a session that counts.
    h.act(Action::CountSession {
        session_id: id.clone(),
        result: Ok(live(&id, &[], 6)),
    });
    assert_eq!(h.key(Key::F(8)), []);
    assert!(notice(&h).1.contains("still counting"));
}

#[test]
fn another_session_counting_is_a_sentence_and_nothing_starts() {
    let mut h = count_screen();
    let req = started(&h.key(Key::Enter));
    h.act(Action::CountStarted {
        session_id: req.session_id.clone().unwrap(),
        result: Err(conflict(
            "count session cycle-1 is counting; finish it first",
        )),
    });
    let (level, text) = notice(&h);
    assert_eq!(level, Level::Error);
    assert_eq!(
        text,
        "Count not started: count session cycle-1 is counting; finish it first. Type that session's id to open it."
    );
    assert_eq!(h.s.count.view, CountView::Setup);
    assert_eq!(h.s.count.start_in_doubt, None);
    // … and typing it opens it.
    assert_eq!(h.scan("cycle-1"), [Effect::LookupCount("cycle-1".into())]);
    h.act(Action::CountSession {
        session_id: "cycle-1".into(),
        result: Ok(live("cycle-1", &[], 3)),
    });
    assert!(matches!(&h.s.count.view, CountView::Live(v) if v.session_id == "cycle-1"));
}

#[test]
fn a_start_in_doubt_is_looked_up_then_posted_again_under_the_same_id() {
    let mut h = count_screen();
    h.scan(PEN);
    let req = started(&h.key(Key::Enter));
    let id = req.session_id.clone().unwrap();
    h.act(Action::CountStarted {
        session_id: id.clone(),
        result: Err(ApiError::Unreachable("timed out".into())),
    });
    assert_eq!(h.s.count.start_in_doubt, Some(req.clone()));
    assert!(notice(&h).1.contains("may or may not have started"));
    // Enter: is it there? No: posted again, the same request.
    assert_eq!(h.key(Key::Enter), [Effect::LookupCount(id.clone())]);
    let e = h.act(Action::CountSession {
        session_id: id.clone(),
        result: Err(ApiError::NotFound),
    });
    assert_eq!(started(&e), req);
    // In doubt again; this time it had started.
    h.act(Action::CountStarted {
        session_id: id.clone(),
        result: Err(ApiError::Unavailable("stopping".into())),
    });
    assert_eq!(h.key(Key::Enter), [Effect::LookupCount(id.clone())]);
    assert_eq!(
        h.act(Action::CountSession {
            session_id: id.clone(),
            result: Ok(live(&id, &[], 0)),
        }),
        []
    );
    assert!(matches!(&h.s.count.view, CountView::Live(v) if v.session_id == id));
    assert_eq!(h.s.count.start_in_doubt, None);
    assert!(notice(&h).1.contains("had started"));
    // Never a second id.
    let starts: Vec<_> = h
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::StartCount(r) => r.session_id.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(starts, [id.clone(), id]);
}

#[test]
fn a_start_in_doubt_can_be_dropped() {
    let mut h = count_screen();
    let req = started(&h.key(Key::Enter));
    h.act(Action::CountStarted {
        session_id: req.session_id.clone().unwrap(),
        result: Err(ApiError::Unreachable("timed out".into())),
    });
    assert_eq!(h.key(Key::F(8)), []);
    assert_eq!(h.s.count.start_in_doubt, None);
    assert!(notice(&h).1.contains("type its id to check"));
}

#[test]
fn finishing_shows_the_variance_and_accepting_asks_first_and_records_once() {
    let (mut h, id) = finished();
    assert!(matches!(&h.s.count.view, CountView::Report(_)));
    assert!(
        notice(&h)
            .1
            .contains("1 item differs (+0 found, -2 missing)"),
        "{:?}",
        h.s.notice
    );
    let t = text(&h.s);
    for want in [
        "FINISHED",
        "Pen, blue",
        "-2",
        "Missing tags: 5: 3074257BF7194E4000001A85 and 4 more",
        "Tags recorded as sold, read here: 1: 3074257BF7194E4000001A86",
        "F5 accepts",
    ] {
        assert!(t.contains(want), "{want} in\n{t}");
    }
    // F5 asks; any other key goes back without a call.
    assert_eq!(h.key(Key::F(5)), []);
    assert_eq!(
        h.s.dialog,
        Some(Dialog::ConfirmAccept {
            session_id: id.clone()
        })
    );
    let t = text(&h.s);
    assert!(
        t.contains("1 item(s) differ: +0 unit(s) found, -2 missing."),
        "{t}"
    );
    assert_eq!(h.key(Key::Char('n')), []);
    assert_eq!(h.s.dialog, None);
    h.key(Key::F(5));
    assert_eq!(h.key(Key::Char('y')), [Effect::AcceptCount(id.clone())]);
    h.act(Action::CountAccepted {
        session_id: id.clone(),
        result: Ok(accepted(&id)),
    });
    assert!(matches!(&h.s.count.view, CountView::Accepted(_)));
    assert!(notice(&h).1.contains("1 adjustment recorded"));
    let t = text(&h.s);
    for want in ["ACCEPTED", "Pen, blue", "down", "1 unit(s) unresolved"] {
        assert!(t.contains(want), "{want} in\n{t}");
    }
    // Accepting twice: said, and nothing is sent.
    assert_eq!(h.key(Key::F(5)), []);
    assert_eq!(h.key(Key::Enter), []);
    assert_eq!(h.s.dialog, None);
    assert!(notice(&h).1.contains("accepted already"));
    let accepts = h
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::AcceptCount(_)))
        .count();
    assert_eq!(accepts, 1);
    // F8: a new count.
    h.key(Key::F(8));
    assert_eq!(h.s.count.view, CountView::Setup);
    assert!(h.s.count.gtins.is_empty());
}

#[test]
fn accepted_elsewhere_shows_the_report_as_accepted() {
    let (mut h, id) = finished();
    h.key(Key::F(5));
    h.key(Key::Char('y'));
    let e = h.act(Action::CountAccepted {
        session_id: id.clone(),
        result: Err(conflict(&format!("count session {id} is accepted"))),
    });
    assert_eq!(e, [Effect::CountReport(id.clone())]);
    h.act(Action::CountReport {
        session_id: id.clone(),
        result: Ok(report(&id, "accepted")),
    });
    assert!(h.s.count.accepted());
    assert!(notice(&h).1.contains("accepted already"));
    assert_eq!(h.key(Key::F(5)), []);
    assert_eq!(h.s.dialog, None);
}

#[test]
fn an_acceptance_in_doubt_is_asked_again_for_the_same_session() {
    let (mut h, id) = finished();
    h.key(Key::F(5));
    h.key(Key::Char('y'));
    h.act(Action::CountAccepted {
        session_id: id.clone(),
        result: Err(ApiError::Unreachable("connection refused".into())),
    });
    assert!(notice(&h).1.contains("may or may not be accepted"));
    assert!(matches!(&h.s.count.view, CountView::Report(_)));
    h.key(Key::F(5));
    assert_eq!(h.key(Key::Enter), [Effect::AcceptCount(id.clone())]);
    // A late answer to nothing awaited is ignored.
    h.act(Action::CountFinished {
        session_id: id.clone(),
        result: Ok(report(&id, "finished")),
    });
    assert_eq!(h.s.count.call, Some(CountCall::Accept(id.clone())));
    h.act(Action::CountAccepted {
        session_id: id.clone(),
        result: Ok(accepted(&id)),
    });
    assert!(matches!(&h.s.count.view, CountView::Accepted(_)));
}

#[test]
fn a_finish_refused_or_unanswered_is_said() {
    let (mut h, id) = counting();
    h.key(Key::F(5));
    h.act(Action::CountFinished {
        session_id: id.clone(),
        result: Err(ApiError::Unreachable("timed out".into())),
    });
    assert!(notice(&h).1.contains("F5 tries again"));
    assert_eq!(h.key(Key::F(5)), [Effect::FinishCount(id.clone())]);
    h.act(Action::CountFinished {
        session_id: id.clone(),
        result: Err(ApiError::NotFound),
    });
    assert_eq!(
        notice(&h).1,
        format!("Count {id} not finished: the agent has no such count session.")
    );
}

#[test]
fn a_session_is_opened_again_by_its_id() {
    let mut h = count_screen();
    // Unknown.
    assert_eq!(h.scan("count-x"), [Effect::LookupCount("count-x".into())]);
    h.act(Action::CountSession {
        session_id: "count-x".into(),
        result: Err(ApiError::NotFound),
    });
    assert_eq!(
        notice(&h).1,
        "No count session count-x at this store: check the id."
    );
    // Finished: its report is fetched and shown.
    h.scan("count-y");
    let mut v = live("count-y", &[], 3);
    v.status = "finished".into();
    let e = h.act(Action::CountSession {
        session_id: "count-y".into(),
        result: Ok(v),
    });
    assert_eq!(e, [Effect::CountReport("count-y".into())]);
    h.act(Action::CountReport {
        session_id: "count-y".into(),
        result: Ok(report("count-y", "finished")),
    });
    assert!(matches!(&h.s.count.view, CountView::Report(r) if r.session_id == "count-y"));
    // The agent down: said.
    h.scan("count-z");
    h.act(Action::CountSession {
        session_id: "count-z".into(),
        result: Err(ApiError::Unreachable("connection refused".into())),
    });
    assert!(notice(&h).1.contains("could not be looked up"));
    // On a report, scans of items are not counted.
    assert_eq!(h.scan_item(PEN), []);
    assert!(notice(&h).1.contains("RFID reader"));
}

#[test]
fn text_from_the_agent_is_made_safe_to_draw() {
    assert_eq!(shown("Pen\u{1b}[2J\u{202e}x\n"), "Pen?[2J?x?");
    let long = "x".repeat(500);
    assert_eq!(shown(&long).chars().count(), 201);

    let (mut h, id) = counting();
    h.act(Action::RefreshCount);
    h.act(Action::CountSession {
        session_id: id.clone(),
        result: Ok(live(&id, &[(PEN, Some("Evil\u{1b}[2J\u{202e}pen"), 1)], 1)),
    });
    let t = text(&h.s);
    assert!(t.contains("Evil?[2J?pen"), "{t}");
    h.key(Key::F(5));
    h.act(Action::CountFinished {
        session_id: id.clone(),
        result: Err(conflict("count session \u{1b}]0;owned\u{7} is accepted")),
    });
    assert!(!notice(&h).1.contains('\u{1b}'), "{:?}", h.s.notice);
}

#[test]
fn every_count_view_draws_on_tiny_terminals() {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    let (mut h, id) = finished();
    let mut states = vec![count_screen().s];
    let (live_h, _) = counting();
    states.push(live_h.s);
    states.push(h.s.clone());
    h.key(Key::F(5));
    states.push(h.s.clone());
    h.key(Key::Char('y'));
    h.act(Action::CountAccepted {
        session_id: id.clone(),
        result: Ok(accepted(&id)),
    });
    states.push(h.s.clone());
    for s in &states {
        for (w, ht) in [(1, 1), (10, 3), (20, 6), (40, 10), (200, 60)] {
            let mut t = Terminal::new(TestBackend::new(w, ht)).unwrap();
            t.draw(|f| crate::render::draw(f, s)).unwrap();
        }
    }
}
