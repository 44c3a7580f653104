//! Draws a [`PosState`] with ratatui: header, banners (agent offline or
//! unreachable), the screen's body (the basket, the pick list with the
//! selected order's lines, the order shown at pickup, the transfers in
//! transit with the selected one's lines, or a count: set up, live, its
//! variance report or its adjustments), its summary
//! line, the input line, a notice, the key help line, and the open dialog
//! on top. Pure drawing: the same state
//! always gives the same screen, so tests render into a `TestBackend` and
//! read the text back.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use tally_agent_api::{CountReportView, OrderView, TransferView};
use tally_sync::fulfilment::{Fulfilment, Status};
use tally_sync::{Refusal, Shortage};

use crate::money::format_minor;
use crate::state::{
    live_items, receivable, shown, units, variance, AgentLink, CountView, Dialog, Level, Listing,
    Mode, OrderRefused, OrderWhy, Pickup, PosState, Receipt, Refused, Screen, TransferRefused,
    TransferWhy, Why, EPCS_SHOWN,
};

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, s: &PosState) {
    let area = frame.area();
    let banner = banner(s);
    let help_text = help_text(s);
    let banner_height = banner
        .as_ref()
        .map_or(0, |(text, _)| wrapped_height(text, area.width, 3));
    let help_height = wrapped_height(&help_text, area.width, 2);
    let [header, banner_area, basket, totals, input, notice, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_height),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(help_height),
    ])
    .areas(area);

    frame.render_widget(Paragraph::new(header_line(s)), header);
    if let Some((text, style)) = banner {
        frame.render_widget(
            Paragraph::new(text).style(style).wrap(Wrap { trim: true }),
            banner_area,
        );
    }
    match s.screen {
        Screen::Basket => {
            draw_basket(frame, s, basket);
            frame.render_widget(Paragraph::new(totals_line(s)), totals);
        }
        Screen::PickList => {
            draw_pick_list(frame, s, basket);
            frame.render_widget(Paragraph::new(pick_summary(s)), totals);
        }
        Screen::Pickup => draw_pickup(frame, s, basket),
        Screen::Transfers => {
            draw_transfers(frame, s, basket);
            frame.render_widget(Paragraph::new(transfers_summary(s)), totals);
        }
        Screen::Count => {
            draw_count(frame, s, basket);
            frame.render_widget(Paragraph::new(count_summary(s)), totals);
        }
    }
    let prompt = match (s.screen, s.mode) {
        (Screen::PickList, _) => "Scan item or order barcode > ",
        (Screen::Pickup, _) => "Scan or type order id > ",
        (Screen::Transfers, _) => "Scan or type transfer id > ",
        (Screen::Count, _) if s.count.view == CountView::Setup => {
            "Scan or type item (or a session id) > "
        }
        (Screen::Count, _) => "Type a count session id > ",
        (Screen::Basket, Mode::Sale) => "Scan or type barcode > ",
        (Screen::Basket, Mode::Return) => "Returned item barcode > ",
    };
    frame.render_widget(
        Paragraph::new(TextLine::from(vec![
            Span::styled(prompt, Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(format!("{}_", s.input)),
        ])),
        input,
    );
    if let Some((level, text)) = &s.notice {
        let style = match level {
            Level::Info => Style::new().fg(Color::Cyan),
            Level::Error => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        };
        frame.render_widget(Paragraph::new(text.as_str()).style(style), notice);
    }
    frame.render_widget(
        Paragraph::new(help_text)
            .style(Style::new().add_modifier(Modifier::REVERSED))
            .wrap(Wrap { trim: true }),
        help,
    );
    if let Some(d) = &s.dialog {
        draw_dialog(frame, s, d, area);
    }
}

/// Lines `text` takes when wrapped at spaces in `width` columns (as
/// ratatui's `Wrap` does, words longer than a line broken), at most `max`.
fn wrapped_height(text: &str, width: u16, max: usize) -> u16 {
    let width = usize::from(width.max(1));
    let (mut lines, mut used) = (1usize, 0usize);
    let (mut spaces, mut word) = (0usize, 0usize);
    // Places the word just read after the spaces before it.
    let mut place = |spaces: usize, word: usize| {
        if word == 0 {
            return;
        }
        if used > 0 && used + spaces + word <= width {
            used += spaces + word;
            return;
        }
        if used > 0 {
            lines += 1;
        }
        lines += (word - 1) / width;
        used = (word - 1) % width + 1;
    };
    for c in text.chars() {
        if c.is_whitespace() {
            if word > 0 {
                place(spaces, word);
                spaces = 0;
                word = 0;
            }
            spaces += 1;
        } else {
            word += 1;
        }
    }
    place(spaces, word);
    u16::try_from(lines.min(max)).unwrap_or(1)
}

fn header_line(s: &PosState) -> TextLine<'static> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mode = match (s.screen, s.mode) {
        (Screen::PickList, _) => Span::styled(" PICK LIST ", bold.fg(Color::Black).bg(Color::Cyan)),
        (Screen::Pickup, _) => Span::styled(" PICKUP ", bold.fg(Color::Black).bg(Color::Blue)),
        (Screen::Transfers, _) => {
            Span::styled(" TRANSFERS ", bold.fg(Color::Black).bg(Color::Yellow))
        }
        (Screen::Count, _) => Span::styled(" COUNT ", bold.fg(Color::Black).bg(Color::LightCyan)),
        (Screen::Basket, Mode::Sale) => {
            Span::styled(" SALE ", bold.fg(Color::Black).bg(Color::Green))
        }
        (Screen::Basket, Mode::Return) => {
            Span::styled(" RETURNS ", bold.fg(Color::Black).bg(Color::Magenta))
        }
    };
    let mut spans = vec![Span::styled("Tally POS ", bold), mode];
    match &s.agent {
        AgentLink::Up(st) => {
            spans.push(Span::raw(format!("  store {}", st.store_id)));
            spans.push(Span::raw("  agent "));
            spans.push(if st.online {
                Span::styled("online", Style::new().fg(Color::Green))
            } else {
                Span::styled("OFFLINE", bold.fg(Color::Yellow))
            });
            spans.push(Span::raw(format!("  outbox {}", st.outbox_events)));
        }
        AgentLink::Down(_) => spans.push(Span::styled("  agent UNREACHABLE", bold.fg(Color::Red))),
        AgentLink::Refused(_) => spans.push(Span::styled(
            "  agent REFUSES THIS TILL",
            bold.fg(Color::Red),
        )),
        AgentLink::Unknown => spans.push(Span::raw("  agent …")),
    }
    if let Some((connected, _)) = &s.scanner {
        spans.push(Span::raw("  scanner "));
        spans.push(if *connected {
            Span::styled("ready", Style::new().fg(Color::Green))
        } else {
            Span::styled("LOST", bold.fg(Color::Red))
        });
    }
    TextLine::from(spans)
}

/// The banner line, if the agent is offline or unreachable.
fn banner(s: &PosState) -> Option<(String, Style)> {
    // Nothing can be recorded from this terminal.
    let alarm = Style::new()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD);
    match &s.agent {
        AgentLink::Down(why) => Some((
            format!(
                " AGENT UNREACHABLE at {}: nothing can be recorded until it answers ({why})",
                s.agent_url
            ),
            alarm,
        )),
        // The hub answered but refuses to sync (a revoked certificate, an
        // event dated outside its window): not "unreachable". What the
        // cashier needs first, the agent's long reason last (a narrow
        // till cuts it, not the rest).
        AgentLink::Up(st) if !st.online && st.sync_error.is_some() => Some((
            format!(
                " SYNC STOPPED. Outbox: {} event{} waiting. Sales are still recorded here.{} Call support: {}",
                st.outbox_events,
                if st.outbox_events == 1 { "" } else { "s" },
                clock_hint(st),
                st.sync_error.as_deref().unwrap_or_default(),
            ),
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        )),
        AgentLink::Up(st) if !st.online => Some((
            format!(
                " OFFLINE: hub not reachable. Outbox: {} event{} waiting. Sales are still recorded here and sync later.{}",
                st.outbox_events,
                if st.outbox_events == 1 { "" } else { "s" },
                clock_hint(st),
            ),
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        )),
        AgentLink::Up(st) if st.clock_off_ms().is_some() => Some((
            format!(" CLOCK:{}", clock_hint(st)),
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        )),
        AgentLink::Refused(why) => Some((
            format!(
                " REFUSED by the agent at {}: nothing can be recorded from this terminal. {why}",
                s.agent_url
            ),
            alarm,
        )),
        AgentLink::Unknown => Some((
            format!(" Connecting to the agent at {}…", s.agent_url),
            Style::new().add_modifier(Modifier::DIM),
        )),
        AgentLink::Up(_) => None,
    }
}

/// " The store agent's clock is 3 days ahead of HQ's…" when it is off
/// the hub's by more than the agent's warning bound, else nothing.
fn clock_hint(st: &tally_agent_api::AgentStatus) -> String {
    match st.clock_off_ms() {
        Some(off) => format!(
            " The store agent's clock is {} {} HQ's: sales are dated by it, have it set (NTP).",
            duration_words(off.unsigned_abs()),
            if off < 0 { "ahead of" } else { "behind" },
        ),
        None => String::new(),
    }
}

/// `ms` in the largest whole unit that fits: "3 days", "5 h", "4 min".
fn duration_words(ms: u64) -> String {
    let (day, hour, minute) = (86_400_000, 3_600_000, 60_000);
    if ms >= 2 * day {
        format!("{} days", ms / day)
    } else if ms >= hour {
        format!("{} h", ms / hour)
    } else {
        format!("{} min", ms / minute)
    }
}

fn draw_basket(frame: &mut Frame<'_>, s: &PosState, area: Rect) {
    let title = match s.mode {
        Mode::Sale => " Basket ",
        Mode::Return => " Returned items ",
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    if s.lines.is_empty() {
        let hint = match s.mode {
            Mode::Sale => "Empty basket: scan an item or type its barcode and press Enter.",
            Mode::Return => "Scan the returned items; F7 sets the original sale id.",
        };
        frame.render_widget(
            Paragraph::new(hint)
                .block(block)
                .style(Style::new().add_modifier(Modifier::DIM)),
            area,
        );
        return;
    }
    let rows = s.lines.iter().enumerate().map(|(i, l)| {
        let mut name = s.name(l);
        if let Some(epc) = &l.epc {
            name.push_str(&format!(" [tag {epc}]"));
        }
        if l.manual_price.is_some() {
            name.push_str(" [price set]");
        }
        let short = s.short_of(l);
        if let Some(may) = short {
            // The units are on the shelf and the hub is reachable: the
            // sale asks HQ for their rights (rights on demand), so the
            // cashier goes on.
            if s.hq_asked_for(l) {
                name.push_str(&format!(" [may sell {may}; asks HQ]"));
            } else {
                name.push_str(&format!(" [SHORT: store may sell {may}]"));
            }
        }
        let money = |v: Option<i64>| v.map_or_else(|| "?".to_string(), format_minor);
        let row = Row::new(vec![
            Cell::from(format!("{}", i + 1)),
            Cell::from(name),
            Cell::from(format!("{:>5}", l.qty)),
            Cell::from(format!("{:>10}", money(s.unit_price(l)))),
            Cell::from(format!("{:>11}", money(s.line_total(l)))),
        ]);
        if short.is_some() {
            row.style(Style::new().fg(Color::Yellow))
        } else {
            row
        }
    });
    let table = selectable(
        Table::new(
            rows,
            [
                Constraint::Length(3),
                Constraint::Min(10),
                Constraint::Length(5),
                Constraint::Length(10),
                Constraint::Length(11),
            ],
        )
        .header(header_row(vec![
            "#",
            "Item",
            "  Qty",
            "     Price",
            "      Total",
        ]))
        .block(block),
    );
    let mut state = TableState::default().with_selected(Some(s.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn totals_line(s: &PosState) -> TextLine<'static> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let units = s
        .lines
        .iter()
        .fold(0u64, |sum, l| sum.saturating_add(l.qty));
    let mut spans = vec![Span::raw(format!(
        " {} line{}, {units} unit{}",
        s.lines.len(),
        if s.lines.len() == 1 { "" } else { "s" },
        if units == 1 { "" } else { "s" }
    ))];
    let label = match s.mode {
        Mode::Sale => "TOTAL",
        Mode::Return => "REFUND",
    };
    match s.total() {
        Ok(t) => spans.push(Span::styled(
            format!("   {label} {}", format_minor(t)),
            bold,
        )),
        Err(i) => spans.push(Span::styled(
            format!("   {label} ? (line {} has no price)", i + 1),
            bold.fg(Color::Red),
        )),
    }
    if !s.tenders.is_empty() {
        let paid: i64 = s.tenders.iter().map(|t| t.applied_minor).sum();
        spans.push(Span::raw(format!("   paid {}", format_minor(paid))));
        if let Some(d) = s.due() {
            spans.push(Span::styled(format!("   DUE {}", format_minor(d)), bold));
        }
    }
    if let Some(id) = s.original_sale_id {
        spans.push(Span::raw(format!("   original sale {id}")));
    }
    if let Some(id) = &s.original_order_id {
        spans.push(Span::raw(format!("   web order {id}")));
    }
    TextLine::from(spans)
}

fn help_text(s: &PosState) -> String {
    let text = match &s.dialog {
        None if s.screen == Screen::Transfers && s.transfers.in_doubt => {
            "F5 retry (same id)  F8 drop  F10 quit"
        }
        None if s.screen == Screen::Transfers => {
            "Up/Down select  scan/type id  F5 receive  F11 refresh  Esc back  F10 quit"
        }
        None if s.screen != Screen::Basket && s.orders.in_doubt => {
            "F5 retry (same id)  F8 drop  F10 quit"
        }
        None if s.screen == Screen::PickList => {
            "Up/Down select  scan items  F5 mark picked  F8 clear scans  F9 refresh  F12 pickup  Esc back  F10 quit"
        }
        None if s.screen == Screen::Pickup => {
            "Enter look up  F5 hand over  Esc clear/back  F9 pick list  F10 quit"
        }
        None if s.screen == Screen::Count => count_help(s),
        None if s.in_doubt => "F5 retry (same id)  F8 discard  F10 quit",
        None => match s.mode {
            Mode::Sale => {
                "Enter scan  F5 pay  +/- qty  F2 qty  Del void  F4 price  F6 returns  F8 new  F9 orders  F11 transfers  F12 pickup  F1 count  F10 quit  Up/Down select"
            }
            Mode::Return => {
                "Enter scan  F5 refund  +/- qty  F2 qty  Del void  F4 price  F6 sales  F7 original sale  F8 new  F9 orders  F11 transfers  F12 pickup  F10 quit  Up/Down select"
            }
        },
        Some(Dialog::ConfirmPicked { .. }) => "Y mark picked  any other key back",
        Some(Dialog::OrderRefused(_)) => "Esc back",
        Some(Dialog::MoveInDoubt { .. }) | Some(Dialog::ReceiptInDoubt { .. }) => {
            "R retry (same id)  Esc back  F8 drop"
        }
        Some(Dialog::TransferRefused(_)) => "Esc back",
        Some(Dialog::HandedOver { .. }) => "Enter next order (or just scan)",
        Some(Dialog::Tender) => "C cash  K card  R remove payment  Esc back",
        Some(Dialog::Cash { .. }) => "Type the cash handed over, Enter (empty = exact)  Esc back",
        Some(Dialog::SignIn { .. }) => "Type your cashier id, Tab or Enter, your PIN, Enter  F10 quit",
        Some(Dialog::Card { .. }) => "Type the card slip reference, Tab amount, Enter  Esc back",
        Some(Dialog::Quantity { .. }) | Some(Dialog::Price { .. }) | Some(Dialog::OriginalSale { .. }) => {
            "Type, Enter to confirm  Esc cancel"
        }
        Some(Dialog::ConfirmRefund) => "Enter confirm refund  Esc back",
        Some(Dialog::Sending) => "Waiting for the agent…",
        Some(Dialog::Refused(r)) if r.can_override => "O manager override  Esc back to basket",
        Some(Dialog::Refused(_)) | Some(Dialog::Invalid { .. }) => "Esc back to basket",
        Some(Dialog::OverrideApprover { .. })
        | Some(Dialog::OverrideReason { .. })
        | Some(Dialog::OverridePin { .. }) => {
            "Type, Enter next  Esc back"
        }
        Some(Dialog::InDoubt { .. }) => "R retry (same id)  Esc back (basket locked)  F8 discard",
        Some(Dialog::Receipt(_)) => "Enter next customer (or just scan)",
        Some(Dialog::ConfirmQuit { .. }) | Some(Dialog::ConfirmDiscard) => "Y yes  any other key no",
        Some(Dialog::CountZone { .. }) => "Type the zone, Enter to confirm (empty = none)  Esc cancel",
        Some(Dialog::ConfirmAccept { .. }) => "Y accept (records the adjustments)  any other key back",
    };
    format!(" {text}")
}

/// A rectangle of at most `w`×`h` centered in `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_dialog(frame: &mut Frame<'_>, s: &PosState, d: &Dialog, area: Rect) {
    let selected_name = s
        .lines
        .get(s.selected)
        .map(|l| s.name(l))
        .unwrap_or_default();
    let due = s.due().map(format_minor).unwrap_or_else(|| "?".into());
    let id = s.event_id.map(|u| u.to_string()).unwrap_or_default();
    let what = match s.mode {
        Mode::Sale => "sale",
        Mode::Return => "return",
    };
    let field = |label: &str, input: &str| format!("{label}{input}_");
    let (title, color, lines): (String, Color, Vec<String>) = match d {
        Dialog::Quantity { input } => (
            " Quantity ".into(),
            Color::Cyan,
            vec![selected_name, String::new(), field("Quantity: ", input)],
        ),
        Dialog::Price { input } => (
            " Unit price ".into(),
            Color::Cyan,
            vec![selected_name, String::new(), field("Price: ", input)],
        ),
        Dialog::Tender => (
            " Payment ".into(),
            Color::Cyan,
            vec![
                format!("Due: {due}"),
                String::new(),
                "[C] cash    [K] card    [R] remove the last payment    [Esc] back".into(),
            ],
        ),
        Dialog::SignIn {
            cashier,
            pin,
            on_pin,
        } => (
            " SIGN IN ".into(),
            Color::Cyan,
            vec![
                "Sales and returns are recorded under the cashier signed in.".into(),
                String::new(),
                if *on_pin {
                    format!("  Cashier: {cashier}")
                } else {
                    format!("▸ {}", field("Cashier: ", cashier))
                },
                if *on_pin {
                    format!("▸ {}", field("PIN: ", &"*".repeat(pin.chars().count())))
                } else {
                    format!("  PIN: {}", "*".repeat(pin.chars().count()))
                },
            ],
        ),
        Dialog::Cash { input } => (
            " Cash ".into(),
            Color::Cyan,
            vec![
                format!("Due: {due}"),
                String::new(),
                field("Cash given (Enter alone = exact): ", input),
            ],
        ),
        Dialog::Card {
            input,
            amount,
            on_amount,
        } => {
            let at = |on: bool| if on { "▸ " } else { "  " };
            (
                " Card ".into(),
                Color::Cyan,
                vec![
                    format!("Due: {due}"),
                    String::new(),
                    if *on_amount {
                        format!("{}Card reference: {input}", at(false))
                    } else {
                        format!("{}{}", at(true), field("Card reference: ", input))
                    },
                    match (*on_amount, amount.is_empty()) {
                        (true, _) => format!("{}{}", at(true), field("Amount (empty: all due): ", amount)),
                        (false, true) => format!("{}Amount: {due} (all due; Tab to pay part by this card)", at(false)),
                        (false, false) => format!("{}Amount: {amount}", at(false)),
                    },
                ],
            )
        }
        Dialog::ConfirmRefund => (
            " Refund ".into(),
            Color::Magenta,
            vec![
                format!(
                    "Refund {} for {} line(s)?",
                    s.total().map(format_minor).unwrap_or_else(|_| "?".into()),
                    s.lines.len()
                ),
                match (s.original_sale_id, &s.original_order_id) {
                    (Some(o), _) => format!("Original sale: {o}"),
                    (None, Some(o)) => format!("Web order: {o} (HQ bounds the refund by it)"),
                    (None, None) => "No original sale given (F7 sets one).".into(),
                },
                String::new(),
                "[Enter] confirm    [Esc] back".into(),
            ],
        ),
        Dialog::OriginalSale { input } => (
            " Original sale ".into(),
            Color::Magenta,
            vec![
                "The sale the items came from: its sale id, or the web order's id".into(),
                "(optional, Enter alone clears):".into(),
                String::new(),
                field("Sale or web order id: ", input),
            ],
        ),
        Dialog::Sending => (
            " Recording… ".into(),
            Color::Cyan,
            vec![match (&s.orders.moving, s.screen) {
                (Some(m), Screen::PickList | Screen::Pickup) => format!(
                    "Recording order {} as {} with the agent…",
                    m.order_id,
                    m.to.name()
                ),
                (_, Screen::Count) => format!(
                    "Sending count {} to the agent…",
                    shown(s.count.call.as_ref().map(|c| c.session_id()).unwrap_or_default())
                ),
                (_, Screen::Transfers) => format!(
                    "Recording transfer {} as received with the agent…",
                    s.transfers
                        .receiving
                        .as_ref()
                        .map(|r| r.transfer_id.as_str())
                        .unwrap_or_default()
                ),
                _ => format!("Recording {what} {id} with the agent…"),
            }],
        ),
        Dialog::Refused(r) => refused_dialog(s, r),
        Dialog::OverrideApprover { refused, input } => (
            " MANAGER APPROVAL ".into(),
            Color::Yellow,
            vec![
                refusal_summary(s, &refused.why),
                "Recorded with the manager's approval and reported to HQ.".into(),
                String::new(),
                field("Approving manager (id): ", input),
            ],
        ),
        Dialog::OverrideReason {
            refused,
            approver,
            input,
        } => (
            " MANAGER APPROVAL ".into(),
            Color::Yellow,
            vec![
                refusal_summary(s, &refused.why),
                format!("Approving manager: {approver}"),
                String::new(),
                field("Reason: ", input),
            ],
        ),
        Dialog::OverridePin {
            refused,
            approver,
            reason,
            input,
        } => (
            " MANAGER APPROVAL ".into(),
            Color::Yellow,
            vec![
                refusal_summary(s, &refused.why),
                format!("Approving manager: {approver}"),
                format!("Reason: {reason}"),
                field("Manager's PIN: ", &"*".repeat(input.chars().count())),
            ],
        ),
        Dialog::Invalid { message } => (
            " NOT RECORDED: invalid ".into(),
            Color::Red,
            vec![
                format!("The agent refused the {what} as invalid:"),
                message.clone(),
                String::new(),
                "Nothing was recorded. [Esc] back to the basket".into(),
            ],
        ),
        Dialog::InDoubt { error } => (
            " NOT CONFIRMED ".into(),
            Color::Red,
            vec![
                format!("The agent did not confirm {what} {id}:"),
                error.clone(),
                String::new(),
                "It may or may not be recorded. Retrying is safe: the same id is sent again, so it is never recorded twice.".into(),
                String::new(),
                "[R] retry    [Esc] back (basket locked)    [F8] discard".into(),
            ],
        ),
        Dialog::Receipt(r) => receipt_dialog(r),
        Dialog::ConfirmQuit { .. } if !s.basket_open() => (
            " Quit? ".into(),
            Color::Red,
            vec![
                match (&s.orders.moving, &s.transfers.receiving) {
                    (Some(m), _) => format!(
                        "Order {} is not confirmed as {} yet: it may or may not be recorded.",
                        m.order_id,
                        m.to.name()
                    ),
                    (None, Some(r)) => format!(
                        "Transfer {} is not confirmed as received yet: it may or may not be recorded.",
                        r.transfer_id
                    ),
                    (None, None) => String::new(),
                },
                "[Y] quit    any other key: stay".into(),
            ],
        ),
        Dialog::ConfirmQuit { .. } => (
            " Quit? ".into(),
            Color::Red,
            vec![
                if s.pending.is_some() {
                    format!("A {what} with {} line(s) awaits the agent's answer.", s.lines.len())
                } else {
                    format!(
                        "A {what} with {} line(s) is open and will be lost.",
                        s.lines.len()
                    )
                },
                if s.pending.is_some() {
                    format!("{what} {id} may already be recorded by the agent: the till's journal keeps it, and the next start opens it again to retry.")
                } else {
                    String::new()
                },
                "[Y] quit    any other key: stay".into(),
            ],
        ),
        Dialog::ConfirmDiscard => (
            " Discard? ".into(),
            Color::Red,
            vec![
                format!("Discard this {what} ({} line(s))?", s.lines.len()),
                if s.in_doubt {
                    format!("{what} {id} may already be recorded: check it before discarding.")
                } else {
                    String::new()
                },
                "[Y] discard    any other key: keep".into(),
            ],
        ),
        Dialog::ConfirmPicked { order_id } => {
            let units = s
                .orders
                .list
                .iter()
                .find(|o| &o.order_id == order_id)
                .map(|o| s.pick_of(o).units(o));
            (
                " Mark picked? ".into(),
                Color::Yellow,
                vec![
                    match units {
                        Some((done, all)) => {
                            format!("Order {order_id}: {done} of {all} units scanned.")
                        }
                        None => format!("Order {order_id}."),
                    },
                    "Mark it picked anyway? Only when every item is set aside for it.".into(),
                    String::new(),
                    "[Y] mark picked    any other key: back".into(),
                ],
            )
        }
        Dialog::OrderRefused(r) => order_refused_dialog(r),
        Dialog::MoveInDoubt { error } => {
            let (order, to) = s
                .orders
                .moving
                .as_ref()
                .map(|m| (m.order_id.as_str(), m.to.name()))
                .unwrap_or_default();
            (
                " NOT CONFIRMED ".into(),
                Color::Red,
                vec![
                    format!("The agent did not confirm order {order} as {to}:"),
                    error.clone(),
                    String::new(),
                    "It may or may not be recorded. Retrying is safe: the same fulfilment id is sent again, so it is never recorded twice.".into(),
                    String::new(),
                    "[R] retry    [Esc] back    [F8] drop".into(),
                ],
            )
        }
        Dialog::HandedOver { order, already } => handed_over_dialog(order, *already),
        Dialog::TransferRefused(r) => transfer_refused_dialog(r),
        Dialog::CountZone { input } => (
            " Zone ".into(),
            Color::Cyan,
            vec![
                "The zone counted, a label (a spot count: without a list, only the items read there are compared):".into(),
                String::new(),
                field("Zone: ", input),
            ],
        ),
        Dialog::ConfirmAccept { session_id } => {
            let differ = match &s.count.view {
                CountView::Report(r) => {
                    let (n, up, down) = variance(r);
                    format!("{n} item(s) differ: +{up} unit(s) found, -{down} missing.")
                }
                _ => String::new(),
            };
            (
                " Accept count? ".into(),
                Color::Yellow,
                vec![
                    format!("Count {}:", shown(session_id)),
                    differ,
                    "Accepting records the adjustments in this store's stock (units missing beyond its rights are raised at HQ).".into(),
                    String::new(),
                    "[Y] accept    any other key: back".into(),
                ],
            )
        }
        Dialog::ReceiptInDoubt { error } => {
            let id = s
                .transfers
                .receiving
                .as_ref()
                .map(|r| r.transfer_id.as_str())
                .unwrap_or_default();
            (
                " NOT CONFIRMED ".into(),
                Color::Red,
                vec![
                    format!("The agent did not confirm transfer {id} as received:"),
                    error.clone(),
                    String::new(),
                    "It may or may not be recorded. Retrying is safe: the same event id is sent again, so it is never received twice.".into(),
                    String::new(),
                    "[R] retry    [Esc] back    [F8] drop".into(),
                ],
            )
        }
    };
    let width = area.width.saturating_sub(4).min(76);
    let inner_width = usize::from(width.saturating_sub(2)).max(1);
    let text_height: usize = lines
        .iter()
        .map(|l| l.chars().count().div_ceil(inner_width).max(1))
        .sum();
    let height = u16::try_from(text_height + 2).unwrap_or(u16::MAX);
    let rect = centered(area, width, height);
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(Style::new().fg(color).add_modifier(Modifier::BOLD))
        .title_style(Style::new().fg(color).add_modifier(Modifier::BOLD));
    let text: Vec<TextLine<'_>> = lines.into_iter().map(TextLine::from).collect();
    frame.render_widget(
        Paragraph::new(text).block(block).wrap(Wrap { trim: false }),
        rect,
    );
}

fn item_name(s: &PosState, gtin: &str) -> String {
    s.lines
        .iter()
        .find(|l| l.gtin == gtin)
        .map(|l| s.name(l))
        .unwrap_or_else(|| gtin.to_string())
}

fn refusal_summary(s: &PosState, why: &Why) -> String {
    match why {
        Why::Rule(Refusal::InsufficientStock {
            gtin,
            requested,
            available,
            ..
        }) => format!(
            "{}: requested {requested}, available {available}.",
            item_name(s, &gtin.to_string())
        ),
        Why::Rule(Refusal::AlreadySold { epc }) => format!("Tag {epc} was already sold."),
        Why::Rule(Refusal::NotSold { epc }) => format!("Tag {epc} was never sold here."),
        Why::Rule(Refusal::ExceedsSale {
            gtin,
            requested,
            returnable,
            ..
        }) => format!(
            "{}: {requested} returned, but that sale has only {returnable} left to take back.",
            item_name(s, &gtin.to_string())
        ),
        Why::Rule(Refusal::Invalid(message)) => format!("Refused as invalid: {message}."),
        Why::Rule(Refusal::ApprovalRequired(what)) => {
            format!("A manager's approval is needed: {what}.")
        }
        Why::Rule(Refusal::UnknownOrder(order)) => {
            format!("No order {order} is allocated to this store.")
        }
        Why::Rule(Refusal::Move { order_id, error }) => format!("Order {order_id}: {error}."),
        Why::Rule(Refusal::UnknownTransfer(id)) => {
            format!("No transfer {id} to this store is known here.")
        }
        Why::Rule(Refusal::TransferReceived(id)) => format!("Transfer {id} was already received."),
        Why::Unknown(body) => format!("Refused: {}.", body.error),
    }
}

fn refused_dialog(s: &PosState, r: &Refused) -> (String, Color, Vec<String>) {
    let mut lines = vec![refusal_summary(s, &r.why)];
    let title = match &r.why {
        Why::Rule(refusal @ Refusal::InsufficientStock { on_hand, .. }) => {
            if let Some(st) = r.stock {
                lines.push(format!(
                    "On hand {}; this store may sell {}; {} held for online orders / other stores.",
                    st.on_hand, st.rights, st.others_rights
                ));
            }
            lines.push(match refusal.shortage(s.hub_online()) {
                Some(Shortage::NoStock) => format!(
                    "No more unsold units are recorded here ({on_hand} on hand): check the shelf \
                     (a miscount or an unrecorded delivery)."
                ),
                Some(Shortage::Offline) => "Store offline: the other units on hand are held for \
                                            online orders, and HQ cannot be reached to release them."
                    .into(),
                _ => "The other units on hand are held for online orders.".into(),
            });
            " REFUSED: not enough stock "
        }
        Why::Rule(Refusal::AlreadySold { .. }) => {
            lines.push("This tag is recorded as sold: a duplicate tag or a misread.".into());
            " REFUSED: tag already sold "
        }
        Why::Rule(Refusal::NotSold { .. }) => {
            lines.push("A return of this tag cannot be taken.".into());
            " REFUSED: tag never sold "
        }
        Why::Rule(Refusal::ExceedsSale { .. }) => {
            lines.push(
                "Check the original sale id, or return the rest without it (manager policy)."
                    .into(),
            );
            " REFUSED: more than the sale sold "
        }
        Why::Rule(Refusal::Invalid(_)) => " REFUSED: invalid ",
        Why::Rule(Refusal::UnknownOrder(_)) => " UNKNOWN ORDER ",
        Why::Rule(Refusal::Move { .. }) => " REFUSED: order status ",
        Why::Rule(Refusal::UnknownTransfer(_)) => " UNKNOWN TRANSFER ",
        Why::Rule(Refusal::TransferReceived(_)) => " ALREADY RECEIVED ",
        Why::Rule(Refusal::ApprovalRequired(_)) => {
            lines.push("A manager approves it with their PIN; it is reported to HQ.".into());
            " MANAGER APPROVAL NEEDED "
        }
        Why::Unknown(body) => {
            if !body.message.is_empty() {
                lines.push(body.message.clone());
            }
            " REFUSED "
        }
    };
    lines.push("Nothing was recorded.".into());
    lines.push(String::new());
    if r.can_override {
        lines.push("[O] manager override    [Esc] back to the basket".into());
    } else if s.mode == Mode::Sale {
        lines.push("Refused even with the manager override. [Esc] back to the basket".into());
    } else {
        lines.push("[Esc] back to the returned items".into());
    }
    (title.into(), Color::Red, lines)
}

/// An order's "how": `pickup` or `ship`.
fn fulfilment_name(f: Fulfilment) -> &'static str {
    match f {
        Fulfilment::Pickup => "pickup",
        Fulfilment::Ship => "ship",
    }
}

/// The move that hands an order over, as the screens say it.
fn hand_over_name(f: Fulfilment) -> &'static str {
    crate::state::hand_over_to(f).name()
}

fn draw_pick_list(frame: &mut Frame<'_>, s: &PosState, area: Rect) {
    let [list_area, lines_area] =
        Layout::vertical([Constraint::Percentage(45), Constraint::Min(3)]).areas(area);
    let o = &s.orders;
    let title = format!(
        " Pick list: {} open order{}{} ",
        o.list.len(),
        if o.list.len() == 1 { "" } else { "s" },
        if o.truncated { " (first ones)" } else { "" }
    );
    let block = Block::default().borders(Borders::ALL).title(title);
    if o.list.is_empty() {
        let hint = match &o.listing {
            Listing::NotAsked | Listing::Loading { .. } => "Loading the pick list…".to_string(),
            Listing::Failed(e) => format!("The pick list could not be loaded: {e}"),
            Listing::Loaded => {
                "No open orders are allocated to this store. (F9 refreshes.)".to_string()
            }
        };
        frame.render_widget(
            Paragraph::new(hint)
                .block(block)
                .style(Style::new().add_modifier(Modifier::DIM))
                .wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let rows = o.list.iter().map(|order| {
        let (done, all) = s.pick_of(order).units(order);
        let scanned = match order.status {
            Status::Allocated if done > 0 => format!("{done}/{all}"),
            Status::Allocated => "-".into(),
            _ => "done".into(),
        };
        let row = Row::new(vec![
            Cell::from(order.order_id.clone()),
            Cell::from(fulfilment_name(order.fulfilment)),
            Cell::from(order.status.name()),
            Cell::from(format!("{all:>5}")),
            Cell::from(format!("{scanned:>7}")),
        ]);
        match order.status {
            Status::Picked => row.style(Style::new().fg(Color::Green)),
            _ => row,
        }
    });
    let table = selectable(
        Table::new(
            rows,
            [
                Constraint::Min(12),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(5),
                Constraint::Length(7),
            ],
        )
        .header(header_row(vec![
            "Order", "How", "Status", "Units", "Scanned",
        ]))
        .block(block),
    );
    let mut state = TableState::default().with_selected(o.selected_index());
    frame.render_stateful_widget(table, list_area, &mut state);
    draw_order_lines(frame, s, lines_area);
}

/// The selected order's lines and what was scanned of each.
fn draw_order_lines(frame: &mut Frame<'_>, s: &PosState, area: Rect) {
    let Some(order) = s.orders.selected_order() else {
        frame.render_widget(Block::default().borders(Borders::ALL), area);
        return;
    };
    let pick = s.pick_of(order);
    let title = format!(
        " Order {} ({}, {}) ",
        order.order_id,
        fulfilment_name(order.fulfilment),
        order.status.name()
    );
    let rows = order.lines.iter().enumerate().map(|(i, l)| {
        let name = l.name.clone().unwrap_or_else(|| l.gtin.to_string());
        let counted = pick.on_line(i);
        let done = order.status != Status::Allocated || counted >= l.qty;
        let scanned = if order.status == Status::Allocated {
            format!("{counted:>4}{}", if done { " ✓" } else { "" })
        } else {
            "   ✓".into()
        };
        let row = Row::new(vec![
            Cell::from(name),
            Cell::from(format!("{:>5}", l.qty)),
            Cell::from(scanned),
        ]);
        if done {
            row.style(Style::new().fg(Color::Green))
        } else {
            row
        }
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(5),
            Constraint::Length(8),
        ],
    )
    .header(header_row(vec!["Item", "  Qty", "Scanned"]))
    .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(table, area);
}

/// The pick list's summary line: the selected order's progress, and the
/// list's freshness.
fn pick_summary(s: &PosState) -> TextLine<'static> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut spans = Vec::new();
    if let Some(order) = s.orders.selected_order() {
        let (done, all) = s.pick_of(order).units(order);
        let text = match order.status {
            Status::Allocated => {
                format!(" Order {}: {done} of {all} units scanned", order.order_id)
            }
            st => format!(" Order {}: {}", order.order_id, st.name()),
        };
        spans.push(Span::styled(text, bold));
    }
    match &s.orders.listing {
        Listing::Loading { .. } => spans.push(Span::raw("   refreshing…")),
        Listing::Failed(e) => spans.push(Span::styled(
            format!("   refresh failed: {e}"),
            Style::new().fg(Color::Red),
        )),
        Listing::NotAsked | Listing::Loaded => {}
    }
    TextLine::from(spans)
}

fn draw_pickup(frame: &mut Frame<'_>, s: &PosState, area: Rect) {
    let block = Block::default().borders(Borders::ALL).title(" Pickup ");
    let dim = Style::new().add_modifier(Modifier::DIM);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let lines: Vec<TextLine<'_>> = match &s.orders.pickup {
        Pickup::Empty => vec![TextLine::styled(
            "Scan the order's barcode, or type its id and press Enter.",
            dim,
        )],
        Pickup::Looking { order_id, .. } => {
            vec![TextLine::styled(
                format!("Looking up order {order_id}…"),
                dim,
            )]
        }
        Pickup::Shown(order) => pickup_lines(order, bold),
    };
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// An RFC 3339 UTC time from the agent (`2026-12-05T23:48:08.316Z`) to the
/// minute, saying it is UTC (`2026-12-05 23:48 UTC`): the agent keeps UTC,
/// and staff must not read it as local time. Anything else is shown as
/// it came.
fn utc_minutes(at: &str) -> String {
    match (at.get(..16), at.ends_with('Z')) {
        (Some(minutes), true) if at.as_bytes().get(10) == Some(&b'T') => {
            format!("{} UTC", minutes.replace('T', " "))
        }
        _ => at.to_string(),
    }
}

fn pickup_lines(order: &OrderView, bold: Style) -> Vec<TextLine<'static>> {
    let mut lines = vec![
        TextLine::from(vec![
            Span::styled(format!("Order {}", order.order_id), bold),
            Span::raw(format!(
                "   {}   allocated {}",
                fulfilment_name(order.fulfilment),
                utc_minutes(&order.allocated_at)
            )),
        ]),
        TextLine::from(vec![
            Span::raw("Status: "),
            Span::styled(order.status.name().to_uppercase(), bold),
        ]),
        TextLine::raw(""),
        TextLine::styled(format!("{:<50} {:>6}", "Item", "Qty"), bold),
    ];
    for l in &order.lines {
        let name: String = l
            .name
            .clone()
            .unwrap_or_else(|| l.gtin.to_string())
            .chars()
            .take(50)
            .collect();
        lines.push(TextLine::raw(format!("{name:<50} {:>6}", l.qty)));
    }
    lines.push(TextLine::raw(""));
    let to = hand_over_name(order.fulfilment);
    lines.push(match order.status {
        Status::Cancelled => TextLine::styled(
            "HQ CANCELLED this order: do not hand it over; put the goods back on the shelf.",
            bold.fg(Color::White).bg(Color::Red),
        ),
        Status::Collected | Status::Shipped => TextLine::styled(
            format!("Already {}: nothing to hand over.", order.status.name()),
            bold.fg(Color::Yellow),
        ),
        Status::Allocated => TextLine::styled(
            format!("Not picked yet: take the items from the shelf. F5 records it as {to}."),
            bold,
        ),
        Status::Picked => TextLine::styled(
            format!("Hand it over, then F5: records it as {to}."),
            bold.fg(Color::Green),
        ),
    });
    lines
}

fn order_refused_dialog(r: &OrderRefused) -> (String, Color, Vec<String>) {
    let id = &r.order_id;
    let to = r.to.map(|t| t.name()).unwrap_or("moved");
    let mut lines = Vec::new();
    let title = match &r.why {
        OrderWhy::NotHere { item_code } => {
            lines.push(format!("Order {id} is not allocated to this store."));
            lines.push(
                "HQ did not allocate it here, or its allocation has not reached the store yet \
                 (within seconds while the store is online; else at the next sync)."
                    .into(),
            );
            if *item_code {
                lines.push(format!(
                    "{id} reads as an item's barcode: scan the order's barcode."
                ));
            }
            " UNKNOWN ORDER "
        }
        OrderWhy::Status {
            status: Some(Status::Cancelled),
            ..
        } => {
            lines.push(format!("HQ cancelled order {id}."));
            lines.push(
                "Do NOT hand it over: put the goods back on the shelf (they are for sale again)."
                    .into(),
            );
            " ORDER CANCELLED BY HQ "
        }
        OrderWhy::Status {
            status: Some(st @ (Status::Collected | Status::Shipped)),
            ..
        } => {
            lines.push(format!("Order {id} was {} already.", st.name()));
            " ALREADY HANDED OVER "
        }
        OrderWhy::Status { message, .. } => {
            lines.push(format!("Order {id} cannot be {to} now:"));
            lines.push(message.clone());
            " REFUSED: order status "
        }
        OrderWhy::Other(message) => {
            lines.push(format!("The agent did not record order {id} as {to}:"));
            lines.push(message.clone());
            " NOT RECORDED "
        }
    };
    if r.to.is_some() {
        lines.push("Nothing was recorded.".into());
    }
    lines.push(String::new());
    lines.push("[Esc] back".into());
    (title.into(), Color::Red, lines)
}

/// The Transfers screen: the transfers in transit (inbound ones first,
/// selectable; outbound ones dimmed, read-only), and below the selected
/// one's lines.
fn draw_transfers(frame: &mut Frame<'_>, s: &PosState, area: Rect) {
    let [list_area, lines_area] =
        Layout::vertical([Constraint::Percentage(45), Constraint::Min(3)]).areas(area);
    let t = &s.transfers;
    let inbound = t.inbound().count();
    let title = format!(
        " Transfers in transit: {inbound} to receive, {} sent{} ",
        t.list.len() - inbound,
        if t.truncated { " (first ones)" } else { "" }
    );
    let block = Block::default().borders(Borders::ALL).title(title);
    if t.list.is_empty() {
        let hint = match &t.listing {
            Listing::NotAsked | Listing::Loading { .. } => "Loading the transfers…".to_string(),
            Listing::Failed(e) => format!("The transfers could not be loaded: {e}"),
            Listing::Loaded => {
                "No transfer is on its way to or from this store. (F11 refreshes.)".to_string()
            }
        };
        frame.render_widget(
            Paragraph::new(hint)
                .block(block)
                .style(Style::new().add_modifier(Modifier::DIM))
                .wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let rows = t.list.iter().map(|tr| {
        let (way, store) = if receivable(tr) {
            ("from", tr.from_store.to_string())
        } else {
            ("to", tr.to_store.to_string())
        };
        let row = Row::new(vec![
            Cell::from(tr.transfer_id.clone()),
            Cell::from(format!("{way} {store}")),
            Cell::from(utc_minutes(&tr.sent_at)),
            Cell::from(format!("{:>5}", tr.lines.len())),
            Cell::from(format!("{:>5}", units(tr))),
        ]);
        if receivable(tr) {
            row
        } else {
            row.style(Style::new().add_modifier(Modifier::DIM))
        }
    });
    let table = selectable(
        Table::new(
            rows,
            [
                Constraint::Min(12),
                Constraint::Length(20),
                Constraint::Length(16),
                Constraint::Length(5),
                Constraint::Length(5),
            ],
        )
        .header(header_row(vec![
            "Transfer",
            "Store",
            "Sent (UTC)",
            "Lines",
            "Units",
        ]))
        .block(block),
    );
    let mut state = TableState::default().with_selected(t.selected_index());
    frame.render_stateful_widget(table, list_area, &mut state);
    draw_transfer_lines(frame, t.selected_transfer(), lines_area);
}

/// A transfer's lines: item, units, tag.
fn draw_transfer_lines(frame: &mut Frame<'_>, tr: Option<&TransferView>, area: Rect) {
    let Some(tr) = tr else {
        frame.render_widget(Block::default().borders(Borders::ALL), area);
        return;
    };
    let title = format!(" Transfer {} from {} ", tr.transfer_id, tr.from_store);
    let rows = tr.lines.iter().map(|l| {
        Row::new(vec![
            Cell::from(l.name.clone().unwrap_or_else(|| l.gtin.to_string())),
            Cell::from(format!("{:>5}", l.qty)),
            Cell::from(l.epc.as_ref().map(|e| e.to_string()).unwrap_or_default()),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(5),
            Constraint::Length(24),
        ],
    )
    .header(header_row(vec!["Item", "  Qty", "Tag"]))
    .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(table, area);
}

/// The Transfers screen's summary line: the selected transfer, and the
/// list's freshness.
fn transfers_summary(s: &PosState) -> TextLine<'static> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut spans = Vec::new();
    if let Some(tr) = s.transfers.selected_transfer() {
        spans.push(Span::styled(
            format!(
                " Transfer {} from {}: {} units. F5 receives it",
                tr.transfer_id,
                tr.from_store,
                units(tr)
            ),
            bold,
        ));
    }
    match &s.transfers.listing {
        Listing::Loading { .. } => spans.push(Span::raw("   refreshing…")),
        Listing::Failed(e) => spans.push(Span::styled(
            format!("   refresh failed: {e}"),
            Style::new().fg(Color::Red),
        )),
        Listing::NotAsked | Listing::Loaded => {}
    }
    TextLine::from(spans)
}

/// The Count screen's key help.
fn count_help(s: &PosState) -> &'static str {
    match &s.count.view {
        CountView::Setup if s.count.start_in_doubt.is_some() => {
            "Enter check (same id)  F8 drop  F10 quit"
        }
        CountView::Setup => {
            "scan/type items  F2 zone  Del remove  Enter start  F8 clear  type an id to open  Esc back  F10 quit"
        }
        CountView::Live(_) => "F5 finish  F1 refresh  Up/Down scroll  Esc back (it goes on counting)  F10 quit",
        _ if s.count.accepted() => "F8 new count  Up/Down scroll  Esc back  F10 quit",
        _ => "F5 accept  F1 refresh  Up/Down scroll  F8 new count  Esc back  F10 quit",
    }
}

/// A list the cashier moves through: the selected row reversed and
/// marked `> `.
fn selectable(table: Table<'_>) -> Table<'_> {
    table
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ")
}

/// A table's header row: bold, underlined.
fn header_row(cells: Vec<&'static str>) -> Row<'static> {
    Row::new(cells).style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED))
}

/// The first EPCs of a finding, and how many more there are.
fn first_epcs(list: &[tally_sync::Epc], total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    let first: Vec<String> = list.iter().take(EPCS_SHOWN).map(|e| e.to_hex()).collect();
    let more = total.saturating_sub(first.len() as u64);
    let mut text = format!(": {}", first.join(", "));
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// The tag findings of a report, one line each.
fn findings(r: &CountReportView) -> Vec<TextLine<'static>> {
    let e = &r.epcs;
    let red = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
    let style = |n: u64| if n > 0 { red } else { Style::new() };
    vec![
        TextLine::styled(
            format!(
                "Missing tags: {}{}",
                e.missing_total,
                first_epcs(&e.missing, e.missing_total)
            ),
            style(e.missing_total),
        ),
        TextLine::styled(
            format!(
                "Tags recorded as sold, read here: {}{}",
                e.sold_but_present_total,
                first_epcs(&e.sold_but_present, e.sold_but_present_total)
            ),
            style(e.sold_but_present_total),
        ),
        TextLine::raw(format!(
            "Tags read {}   unknown tags {}   off-list tags {}",
            r.tags, r.unknown_tags, r.out_of_scope_tags
        )),
    ]
}

/// An item's name from the agent (made safe), else its GTIN.
fn agent_name(name: Option<&String>, gtin: &tally_sync::Gtin) -> String {
    name.map_or_else(|| gtin.to_string(), |n| shown(n))
}

/// The Count screen's body: what is set up, the live session, its report,
/// or its adjustments.
fn draw_count(frame: &mut Frame<'_>, s: &PosState, area: Rect) {
    let c = &s.count;
    let (title, info, header, widths, rows): (
        String,
        Vec<TextLine<'static>>,
        Row<'static>,
        Vec<Constraint>,
        Vec<Row<'static>>,
    ) = match &c.view {
        CountView::Setup => (
            " New count ".into(),
            vec![
                TextLine::raw(if c.gtins.is_empty() {
                    match c.zone {
                        Some(_) => "Items: those read in the zone (scan items to count only those)"
                            .to_string(),
                        None => {
                            "Items: the whole store (scan items to count only those)".to_string()
                        }
                    }
                } else {
                    format!("Items: the {} listed below", c.gtins.len())
                }),
                TextLine::raw(match &c.zone {
                    Some(z) => format!("Zone: {}", shown(z)),
                    None => "Zone: none (F2 names one)".into(),
                }),
            ],
            header_row(vec!["Item", "GTIN"]),
            vec![Constraint::Min(10), Constraint::Length(14)],
            c.gtins
                .iter()
                .map(|g| Row::new(vec![Cell::from(s.count_name(g)), Cell::from(g.clone())]))
                .collect(),
        ),
        CountView::Live(v) => (
            format!(" Count {}: COUNTING ", shown(&v.session_id)),
            vec![
                TextLine::raw(format!(
                    "Zone: {}   started {}   {}",
                    v.zone.as_deref().map_or_else(|| "none".into(), shown),
                    shown(&utc_minutes(&v.started_at)),
                    match &v.gtins {
                        Some(l) => format!("{} listed items", l.len()),
                        None => "all items".into(),
                    }
                )),
                TextLine::styled(
                    format!(
                        "Tags {}   reads {}   unknown tags {}   off-list tags {}",
                        v.tags, v.reads, v.unknown_tags, v.out_of_scope_tags
                    ),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
            ],
            header_row(vec!["Item", "GTIN", "Counted"]),
            vec![
                Constraint::Min(10),
                Constraint::Length(14),
                Constraint::Length(7),
            ],
            live_items(v)
                .iter()
                .map(|i| {
                    let name = match &i.name {
                        Some(n) => shown(n),
                        None => s.count_name(&i.gtin.to_string()),
                    };
                    Row::new(vec![
                        Cell::from(name),
                        Cell::from(i.gtin.to_string()),
                        Cell::from(format!("{:>7}", i.counted)),
                    ])
                })
                .collect(),
        ),
        CountView::Report(r) => (
            format!(
                " Count {}: {} ",
                shown(&r.session_id),
                if r.status == "accepted" {
                    "ACCEPTED"
                } else {
                    "FINISHED, variance"
                }
            ),
            findings(r),
            header_row(vec!["Item", "Expected", " Counted", "    Diff"]),
            vec![
                Constraint::Min(10),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(8),
            ],
            r.items
                .iter()
                .map(|l| {
                    let row = Row::new(vec![
                        Cell::from(agent_name(l.name.as_ref(), &l.gtin)),
                        Cell::from(format!("{:>8}", l.expected)),
                        Cell::from(format!("{:>8}", l.counted)),
                        Cell::from(match l.difference {
                            0 => format!("{:>8}", 0),
                            d => format!("{d:>+8}"),
                        }),
                    ]);
                    match l.difference {
                        0 => row,
                        d if d < 0 => row.style(Style::new().fg(Color::Red)),
                        _ => row.style(Style::new().fg(Color::Yellow)),
                    }
                })
                .collect(),
        ),
        CountView::Accepted(a) => (
            format!(
                " Count {}: ACCEPTED, adjustments recorded ",
                shown(&a.session_id)
            ),
            if a.adjustments.is_empty() {
                vec![TextLine::raw(
                    "No adjustment: every count matched the records.",
                )]
            } else {
                findings(&a.report)
            },
            header_row(vec!["Item", "Move", "   Units", "Unresolved"]),
            vec![
                Constraint::Min(10),
                Constraint::Length(6),
                Constraint::Length(8),
                Constraint::Length(10),
            ],
            a.adjustments
                .iter()
                .map(|adj| {
                    let name = a
                        .report
                        .items
                        .iter()
                        .find(|l| l.gtin == adj.gtin)
                        .and_then(|l| l.name.as_ref());
                    let row = Row::new(vec![
                        Cell::from(agent_name(name, &adj.gtin)),
                        Cell::from(shown(&adj.direction)),
                        Cell::from(format!("{:>8}", adj.units)),
                        Cell::from(format!("{:>10}", adj.unresolved)),
                    ]);
                    if adj.unresolved > 0 {
                        row.style(Style::new().fg(Color::Yellow))
                    } else {
                        row
                    }
                })
                .collect(),
        ),
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let info_height = u16::try_from(info.len()).unwrap_or(0);
    let [info_area, table_area] =
        Layout::vertical([Constraint::Length(info_height), Constraint::Min(1)]).areas(inner);
    frame.render_widget(Paragraph::new(info).wrap(Wrap { trim: true }), info_area);
    if rows.is_empty() {
        let hint = match &c.view {
            CountView::Setup => "Scan or type items to count only those; Enter with none counts every item (of the zone, with one).",
            CountView::Live(_) => "No tag read yet: the RFID reader in count mode feeds this count.",
            _ => "",
        };
        frame.render_widget(
            Paragraph::new(hint)
                .style(Style::new().add_modifier(Modifier::DIM))
                .wrap(Wrap { trim: true }),
            table_area,
        );
        return;
    }
    let table = selectable(Table::new(rows, widths).header(header));
    let mut state = TableState::default().with_selected(Some(c.selected));
    frame.render_stateful_widget(table, table_area, &mut state);
}

/// The Count screen's summary line.
fn count_summary(s: &PosState) -> TextLine<'static> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let text = match &s.count.view {
        CountView::Setup => " Enter starts the count".to_string(),
        CountView::Live(v) => format!(" {} tag(s) counted   F5 finishes the count", v.tags),
        CountView::Report(r) => {
            let (n, up, down) = variance(r);
            if r.status == "accepted" {
                format!(" {n} item(s) differed: +{up} / -{down} units. Accepted.")
            } else {
                format!(" {n} item(s) differ: +{up} / -{down} units   F5 accepts")
            }
        }
        CountView::Accepted(a) => {
            let unresolved: u64 = a.adjustments.iter().map(|x| x.unresolved).sum();
            format!(
                " {} adjustment(s) recorded{}",
                a.adjustments.len(),
                if unresolved > 0 {
                    format!("; {unresolved} unit(s) unresolved, raised at HQ")
                } else {
                    String::new()
                }
            )
        }
    };
    TextLine::styled(text, bold)
}

fn transfer_refused_dialog(r: &TransferRefused) -> (String, Color, Vec<String>) {
    let id = &r.transfer_id;
    let mut lines = Vec::new();
    let title = match &r.why {
        TransferWhy::NotHere => {
            lines.push(format!("Transfer {id} is not known at this store yet."));
            lines.push(
                "The hub has not told this store of it yet (within seconds while the store is \
                 online; else at the next sync). Check the id, keep the goods aside, try again later."
                    .into(),
            );
            " UNKNOWN TRANSFER "
        }
        TransferWhy::Received => {
            lines.push(format!("Transfer {id} was received already."));
            lines.push("Its units are in this store's stock: do not receive it again.".into());
            " ALREADY RECEIVED "
        }
        TransferWhy::Outbound { to_store } => {
            lines.push(format!(
                "Transfer {id} was sent BY this store to {to_store}: nothing to receive here."
            ));
            " NOT FOR THIS STORE "
        }
        TransferWhy::Other(message) => {
            lines.push(format!("The agent did not receive transfer {id}:"));
            lines.push(message.clone());
            " NOT RECORDED "
        }
    };
    if r.posted {
        lines.push("Nothing was recorded.".into());
    }
    lines.push(String::new());
    lines.push("[Esc] back".into());
    (title.into(), Color::Red, lines)
}

fn handed_over_dialog(order: &OrderView, already: bool) -> (String, Color, Vec<String>) {
    let (title, say) = match order.fulfilment {
        Fulfilment::Pickup => (" ORDER COLLECTED ", "Hand the goods to the customer."),
        Fulfilment::Ship => (" ORDER SHIPPED ", "Hand the parcel to the carrier."),
    };
    let mut lines = vec![format!("Order {}", order.order_id), String::new()];
    for l in &order.lines {
        let name: String = l
            .name
            .clone()
            .unwrap_or_else(|| l.gtin.to_string())
            .chars()
            .take(50)
            .collect();
        lines.push(format!("{name:<50} × {:>4}", l.qty));
    }
    lines.push(String::new());
    lines.push(say.into());
    if already {
        lines.push("(It was recorded before: nothing new was recorded.)".into());
    }
    lines.push(String::new());
    lines.push("[Enter] next order (or just scan)".into());
    (title.into(), Color::Green, lines)
}

fn receipt_dialog(r: &Receipt) -> (String, Color, Vec<String>) {
    let (title, label, id_label) = match r.mode {
        Mode::Sale => (" SALE COMMITTED ", "TOTAL", "Sale"),
        Mode::Return => (" RETURN COMMITTED ", "REFUND TOTAL", "Return"),
    };
    let row = |left: &str, right: &str| format!("{left:<50} {right:>12}");
    let mut lines = vec![format!("{id_label} {}", r.id)];
    if let Some(o) = r.original_sale_id {
        lines.push(format!("Original sale {o}"));
    }
    if let Some(o) = &r.original_order_id {
        lines.push(format!("Web order {o}"));
    }
    lines.push(String::new());
    for l in &r.lines {
        let name: String = l.name.chars().take(32).collect();
        lines.push(row(
            &format!(
                "{name:<32} {:>4} x {:>9}",
                l.qty,
                format_minor(l.unit_price_minor)
            ),
            &format_minor(l.total_minor),
        ));
    }
    lines.push(String::new());
    lines.push(row(label, &format_minor(r.total_minor)));
    for t in &r.tenders {
        let left = match (&t.reference, t.method) {
            (Some(reference), _) => format!("Card (ref {reference})"),
            (None, "cash") => "Cash".to_string(),
            (None, m) => m.to_string(),
        };
        lines.push(row(&left, &format_minor(t.given_minor)));
    }
    if r.change_minor > 0 {
        lines.push(row("CHANGE", &format_minor(r.change_minor)));
    }
    if let Some((approver, reason)) = &r.override_ {
        lines.push(format!("Manager override by {approver}: {reason}"));
    }
    if let Some(local) = r.local_total_minor {
        lines.push(format!(
            "Note: the terminal computed {}; the agent recorded the total above.",
            format_minor(local)
        ));
    }
    lines.push(String::new());
    lines.push("[Enter] next customer".into());
    (title.into(), Color::Green, lines)
}

#[cfg(test)]
mod tests {
    use super::wrapped_height;

    #[test]
    fn wrapped_height_counts_word_wrapped_lines() {
        assert_eq!(wrapped_height("", 10, 3), 1);
        assert_eq!(wrapped_height("abc def", 7, 3), 1);
        assert_eq!(wrapped_height("abc def", 6, 3), 2);
        assert_eq!(wrapped_height("abc defgh ij", 5, 9), 3);
        assert_eq!(wrapped_height("abcdefghijk", 5, 9), 3);
        assert_eq!(wrapped_height("a b c d e f", 1, 3), 3);
        // Runs of spaces count, as ratatui keeps them inside a line.
        assert_eq!(wrapped_height("ab  cd", 5, 3), 2);
        assert_eq!(wrapped_height(" ab  cd", 6, 3), 1);
    }
}
