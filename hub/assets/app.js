// Tally HQ dashboard: plain JS, no build step. Talks to the hub's admin
// API with the admin token (kept in sessionStorage for this tab only) and
// refreshes every 2 s without reloading the page.
"use strict";

const COLORS = ["#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6", "#ec4899", "#14b8a6", "#64748b"];
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("tally-admin-token") || "";
let timer = null;
let lastGtin = null;

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (r.status === 401 || r.status === 403) throw new AuthError();
  const body = await r.json().catch(() => ({}));
  // Hub errors are {"error": code, "message": text} (docs/api-hub.md).
  if (!r.ok) throw new Error(body.message || body.error || ("HTTP " + r.status));
  return body;
}
class AuthError extends Error { constructor() { super("the admin token was refused"); } }

function text(s) { return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }
// Seconds as "4 s", "12 min", "3 h", "2 d".
function duration(secs) {
  const s = Math.max(0, Math.round(secs));
  if (s < 90) return s + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}
// An RFC 3339 instant as a <time> in the viewer's local time.
function timeTag(ts) {
  const d = new Date(ts);
  if (!ts || isNaN(d)) return `<span class="muted">never</span>`;
  const today = d.toDateString() === new Date().toDateString();
  const shown = d.toLocaleString([], today ? { hour: "2-digit", minute: "2-digit", second: "2-digit" }
    : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  return `<time datetime="${text(ts)}" title="${text(ts)}">${text(shown)}</time>`;
}
// Minor units as a decimal amount (two places; the chain's currency).
function money(minor) { return (Number(minor) / 100).toFixed(2); }
function list(body, key) { return Array.isArray(body) ? body : (body[key] || []); }

// The reasons a sale or an order lacks rights (docs/api-hub.md), in the
// order shown, with what they mean.
const REASONS = [
  ["no_stock", "no stock", "fewer unsold units at the store than asked"],
  ["held_elsewhere", "held elsewhere", "the units are on the shelf, the hub holds their rights"],
  ["offline", "offline", "the units are on the shelf, their rights are out of reach (link down)"],
];
// Lost sales (`{reason: {sales, units}}`) as one line per reason that
// lost any; refused orders (`{reason: n}`) likewise.
function lostCell(lost) {
  const rows = REASONS.filter(([r]) => lost && lost[r] && lost[r].sales > 0).map(([r, label, why]) =>
    `<span class="reason ${r}" data-reason="${r}" title="${text(why)}">${text(label)}: <b>${text(lost[r].sales)}</b> ` +
    `${lost[r].sales === 1 ? "sale" : "sales"}, ${text(lost[r].units)} ${lost[r].units === 1 ? "unit" : "units"}</span>`);
  return rows.join("") || `<span class="muted">none</span>`;
}
// The totals since a store's first sync, as a cell's tooltip.
function sinceFirstSync(lost, refused) {
  const sales = REASONS.reduce((a, [r]) => a + (((lost || {})[r] || {}).sales || 0), 0);
  const orders = REASONS.reduce((a, [r]) => a + ((refused || {})[r] || 0), 0);
  return `since its first sync: ${sales} ${sales === 1 ? "sale" : "sales"} lost, ${orders} online ${orders === 1 ? "order" : "orders"} refused`;
}
function refusedCell(refused) {
  const rows = REASONS.filter(([r]) => refused && refused[r] > 0).map(([r, label, why]) =>
    `<span class="reason ${r}" data-reason="${r}" title="${text(why)}">${text(label)}: <b>${text(refused[r])}</b></span>`);
  return rows.join("") || `<span class="muted">none</span>`;
}

function renderStores(body) {
  const stores = list(body, "stores");
  $("stores-body").innerHTML = stores.map((s) => {
    const id = s.store;
    const online = !!s.online;
    return `<tr data-store="${text(id)}" class="${online ? "" : "is-offline"}"><td class="id"><b>${text(id)}</b></td>` +
      `<td><span class="pill ${online ? "online" : "offline"}">${online ? "online" : "offline"}</span>` +
      (s.live ? ` <span class="badge live" title="live link open since ${text(s.live_since || "")}: rights flow on demand">live</span>` : "") +
      `</td>` +
      // The lag is the hub's own count: the viewer's clock may be off.
      `<td class="nowrap">${timeTag(s.last_sync_at)}</td><td class="nowrap">${text(duration(s.seconds_since_last_sync || 0))} ago</td>` +
      `<td class="num">${text(s.events_received ?? 0)}</td>` +
      // The last 24 hours (what HQ acts on today); the totals since the
      // store's first sync in the tooltip.
      `<td class="lost" data-testid="lost-sales" title="${text(sinceFirstSync(s.lost_sales, s.refused_orders))}">${lostCell((s.last_24h || {}).lost_sales)}</td>` +
      `<td class="lost" data-testid="refused-orders" title="${text(sinceFirstSync(s.lost_sales, s.refused_orders))}">${refusedCell((s.last_24h || {}).refused_orders)}</td></tr>`;
  }).join("") || `<tr><td colspan="7" class="muted">No store has synced yet.</td></tr>`;
  const online = stores.filter((s) => s.online).length;
  const events = stores.reduce((a, s) => a + (s.events_received || 0), 0);
  $("sum-stores").innerHTML = `<b>${online}</b>/${stores.length} stores online`;
  $("sum-stores").classList.toggle("warn", online < stores.length);
  $("sum-events").innerHTML = `<b>${events}</b> events received`;
  // Sales lost at every store, for every reason, in the last 24 hours.
  const lostAt = (s) => REASONS.reduce((b, [r]) => b + (((((s.last_24h || {}).lost_sales || {})[r]) || {}).sales || 0), 0);
  const lost = stores.reduce((a, s) => a + lostAt(s), 0);
  $("sum-lost").innerHTML = `<b>${text(lost)}</b> sales lost in 24 h`;
  $("sum-lost").classList.toggle("warn", lost > 0);
}

// Exceptions come oldest first, paged by id (`since`, `next`), at most
// 1,000 a call: the page keeps a cursor, fetches only what is new on each
// refresh and shows the newest. It starts at the newest 1,000 (the answer's
// `last` is the newest id, ids rise from 1 without gaps), so opening the
// page reads what it shows, not every exception the hub ever raised.
const EXCEPTIONS_PAGE = 1000, EXCEPTIONS_KEPT = 1000, EXCEPTIONS_SHOWN = 100;
let exceptions = { list: [], next: 0, total: 0, open: 0, started: false };
// The exception whose acknowledgement form is open (the table is not
// redrawn under it while it is).
let ackOpen = null;

async function fetchExceptions() {
  if (!exceptions.started) {
    const head = await api("/v1/exceptions?since=0&limit=1");
    if (typeof head.last === "number") {
      exceptions.next = Math.max(0, head.last - EXCEPTIONS_KEPT);
    }
    exceptions.started = true;
  }
  for (let pages = 0; pages < 20; pages++) {
    const body = await api(`/v1/exceptions?since=${exceptions.next}&limit=${EXCEPTIONS_PAGE}`);
    const got = list(body, "exceptions").filter((x) => x.id > exceptions.next);
    exceptions.list.push(...got);
    exceptions.list.splice(0, Math.max(0, exceptions.list.length - EXCEPTIONS_KEPT));
    exceptions.total = typeof body.last === "number" ? body.last : exceptions.total + got.length;
    if (typeof body.open === "number") exceptions.open = body.open;
    if (typeof body.next === "number") exceptions.next = body.next;
    if (got.length < EXCEPTIONS_PAGE) break;
  }
  // The rows shown read again, from the oldest of them (at least the
  // newest 100; ids rise without gaps): what another reviewer acknowledged
  // meanwhile, also in the open-only view, whose rows may be older.
  const shown = shownExceptions();
  const oldest = shown.length ? shown[0].id : exceptions.total;
  const since = Math.max(0, Math.min(oldest - 1, exceptions.total - EXCEPTIONS_SHOWN));
  const limit = Math.max(1, Math.min(EXCEPTIONS_KEPT, exceptions.total - since));
  const recent = await api(`/v1/exceptions?since=${since}&limit=${limit}`);
  mergeAcks(list(recent, "exceptions"));
}

// The exceptions the table shows, oldest first: the newest 100 kept, or
// of those the open ones only.
function shownExceptions() {
  const openOnly = $("open-only").checked;
  return exceptions.list.filter((e) => !openOnly || !e.acknowledged).slice(-EXCEPTIONS_SHOWN);
}

// Takes the acknowledgements of `fresh` exceptions into the list kept.
function mergeAcks(fresh) {
  const byId = new Map(fresh.map((x) => [x.id, x]));
  for (const e of exceptions.list) {
    const f = byId.get(e.id);
    if (f && f.acknowledged) e.acknowledged = f.acknowledged;
  }
}

function exceptionDetail(e) {
  const d = e.detail || {};
  if (e.kind === "unknown_allocation") {
    return "order " + (d.order_id ?? "?") + ": moved to " + (d.status || "?") +
      " by a store the hub did not allocate it to";
  }
  if (e.kind === "order_conflict") {
    return "order " + (d.order_id ?? "?") + (d.kept ? " (" + d.kept + " stands)" : "") +
      (d.message ? ": " + d.message : "");
  }
  if (d.transfer_id != null) {
    const route = (d.from ? " from " + d.from : "") + (d.to ? " to " + d.to : "");
    const units = typeof d.units === "number" ? ", " + d.units + (d.units === 1 ? " unit" : " units") : "";
    return "transfer " + d.transfer_id + route + units + (d.message ? ": " + d.message : "");
  }
  if (d.epc) {
    const stores = [...new Set((d.sales || []).map((s) => s.store))];
    return "EPC " + d.epc + (stores.length > 1 ? " sold by " + stores.join(" and ")
      : stores.length ? " sold twice by " + stores[0] : "");
  }
  if (e.kind === "event_held") return "sync refused: " + (d.reason || "?") + " (held; admit with POST /v1/held/{id}/admit)";
  if (e.kind === "event_admitted") return "admitted by HQ (refused: " + (d.reason || "?") + ")";
  if (d.approver || d.reason || e.kind === "no_receipt_refund" || e.kind === "price_override") {
    const short = (d.shortfall || []).map((s) => s.units + " × " + s.gtin).join(", ");
    const held = (d.held_for_orders || []).map((h) => h.units + " × " + h.gtin).join(", ");
    const prices = (d.price_overrides || []).map((p) =>
      p.gtin + " at " + money(p.keyed_minor) + " (catalog " + money(p.catalog_minor) + ")").join(", ");
    const refund = e.kind === "no_receipt_refund" && typeof d.total_minor === "number"
      ? " (refund " + money(d.total_minor) + ")" : "";
    const who = [d.cashier && "cashier " + d.cashier, d.till && "till " + d.till].filter(Boolean);
    return ["approved by " + (d.approver || "nobody"), d.reason].filter(Boolean).join(": ") +
      (short ? " (beyond rights: " + short + ")" : "") +
      (held ? " (held for waiting online orders: " + held + "; check them)" : "") +
      (prices ? " (keyed: " + prices + ")" : "") + refund +
      (who.length ? "; " + who.join(", ") : "");
  }
  if (d.unresolved) return d.unresolved + " units of " + d.gtin + " missing, rights held elsewhere";
  return "";
}

function ackCell(e) {
  const a = e.acknowledged;
  if (a) {
    return `<span class="by" data-acked-by="${text(a.by)}">✓ ${text(a.by)}</span> ${timeTag(a.at)}` +
      (a.note ? `<div class="note">${text(a.note)}</div>` : "");
  }
  if (ackOpen === e.id) {
    return `<form class="ack" data-ack-form="${e.id}"><input name="note" maxlength="1000" placeholder="what you found (optional)">` +
      `<button class="small" type="submit">Acknowledge</button><button class="small" type="button" data-ack-cancel>Cancel</button></form>`;
  }
  return `<button class="small" type="button" data-ack="${e.id}">Acknowledge…</button>`;
}

function renderExceptions() {
  $("sum-exceptions").innerHTML = `<b>${exceptions.open}</b> open exceptions <span class="muted">of ${exceptions.total}</span>`;
  $("sum-exceptions").classList.toggle("warn", exceptions.open > 0);
  // Not under a form being filled in.
  if (ackOpen !== null && document.querySelector(`form[data-ack-form="${ackOpen}"]`)) return;
  const openOnly = $("open-only").checked;
  const rows = shownExceptions().reverse();
  $("exceptions-body").innerHTML = rows.map((e) => {
    const kind = e.kind || "exception";
    // UUIDv7 ids begin with the time (the same for events a minute apart):
    // show their random end, the whole id on hover.
    const ids = (e.event_ids || []).map((i) =>
      `<code data-event-id="${text(i)}" title="${text(i)}">…${text(String(i).slice(-8))}</code>`).join("");
    return `<tr data-kind="${text(kind)}" data-id="${e.id}"${e.acknowledged ? ' class="is-acked"' : ""}>` +
      `<td><span class="tag ${text(kind)}">${text(kind.replace(/_/g, " "))}</span></td>` +
      `<td class="id">${text(e.store)}</td><td>${text(exceptionDetail(e))}</td><td class="ids">${ids}</td>` +
      `<td class="nowrap">${timeTag(e.at)}</td><td class="ack">${ackCell(e)}</td></tr>`;
  }).join("") || `<tr><td colspan="6" class="muted">${openOnly ? "No open exceptions." : "No exceptions."}</td></tr>`;
  $("exceptions-count").textContent = !exceptions.total ? ""
    : `${exceptions.total} in all, ${exceptions.open} open, newest first` +
      (exceptions.total > rows.length ? `, latest ${rows.length} shown` : "");
  if (ackOpen !== null) {
    const note = document.querySelector(`form[data-ack-form="${ackOpen}"] input[name=note]`);
    if (note) note.focus();
  }
}

// HQ acknowledges exception `id`, signed by the reviewer, with `note`.
async function acknowledge(id, note) {
  const by = $("reviewer").value.trim();
  if (!by) {
    $("ack-error").textContent = "Type your name as reviewer first: it signs the acknowledgement.";
    $("reviewer").focus();
    return;
  }
  sessionStorage.setItem("tally-reviewer", by);
  $("ack-error").textContent = "";
  try {
    const r = await fetch(`/v1/exceptions/${id}/ack`, {
      method: "POST",
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
      body: JSON.stringify({ by, note }),
    });
    if (r.status === 401 || r.status === 403) return logout(new AuthError().message);
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.message || body.error || ("HTTP " + r.status));
    const e = exceptions.list.find((x) => x.id === id);
    if (e) e.acknowledged = body.acknowledged;
    if (!body.already) exceptions.open = Math.max(0, exceptions.open - 1);
    if (body.already) $("ack-error").textContent = `Already acknowledged by ${body.acknowledged.by}.`;
    ackOpen = null;
    renderExceptions();
  } catch (err) {
    $("ack-error").textContent = "Not acknowledged: " + err.message;
  }
}

// Orders and transfers (issue 22). The counts are the hub's own, kept as
// orders and transfers move (`/v1/stats/orders`); the lists are pages of
// `GET /v1/orders?status=` and `GET /v1/transfers` (by id; received ones
// the latest first). Every string in them (ids, store ids, statuses)
// comes from stores or clients and is escaped like the rest.
// Returns across stores and channels are the hub's list of those it
// counted (`GET /v1/returns`), the latest first.
const ORDER_STATUSES = ["allocated", "picked", "collected", "shipped", "cancelled"];
const ORDERS_PAGE = 100, TRANSIT_SHOWN = 100, RECEIVED_SHOWN = 20;
// The status shown ("open": allocated and picked), the page's `after`
// cursor and those of the pages before it (for "Previous").
let orderView = { status: "open", after: "", before: [], next: null };
// Bumped by each change of view: an answer for an older view is dropped.
let orderGen = 0;
let counts = { orders: {}, transfers: {} };

function statusTag(s) {
  const known = ORDER_STATUSES.includes(s) || s === "in_transit" || s === "received";
  return `<span class="status ${known ? s : "other"}" data-status="${text(s)}">${text(String(s || "?").replace(/_/g, " "))}</span>`;
}
// Lines as "2 × 00614141000012, 1 × …" with the GTINs in code.
function linesCell(lines) {
  return (lines || []).map((l) => `<span class="line">${text(l.qty)} × <code>${text(l.gtin)}</code></span>`).join(", ");
}
// An RFC 3339 instant as Unix ms, for ordering (the text does not sort:
// its fraction is left out when zero); 0 when unreadable.
function instant(ts) { return Date.parse(ts) || 0; }

async function fetchOrders() {
  const v = orderView;
  if (v.status === "open") {
    const pages = await Promise.all(["allocated", "picked"].map((s) => api(`/v1/orders?status=${s}&limit=${ORDERS_PAGE}`)));
    const orders = pages.flatMap((b) => list(b, "orders"));
    // Waiting longest first.
    orders.sort((a, b) => instant(a.at) - instant(b.at) || String(a.order_id).localeCompare(String(b.order_id)));
    return { orders, next: null };
  }
  const body = await api(`/v1/orders?status=${encodeURIComponent(v.status)}&limit=${ORDERS_PAGE}&after=${encodeURIComponent(v.after)}`);
  const orders = list(body, "orders");
  return { orders, next: orders.length === ORDERS_PAGE ? body.next : null };
}

function renderOrderCounts() {
  const c = counts.orders || {};
  const open = (c.allocated || 0) + (c.picked || 0);
  const chip = (status, n, label) =>
    `<button type="button" class="count${orderView.status === status ? " on" : ""}" data-status="${status}"><b>${text(n)}</b> ${text(label)}</button>`;
  $("order-counts").innerHTML = chip("open", open, "open") +
    ORDER_STATUSES.map((s) => chip(s, c[s] || 0, s)).join("");
  $("sum-orders").innerHTML = `<b>${text(open)}</b> open ${open === 1 ? "order" : "orders"}`;
}

function renderOrders(page) {
  const v = orderView;
  $("orders-body").innerHTML = page.orders.map((o) => {
    const allocs = (o.allocations || []).map((a) =>
      `<div class="alloc" data-store="${text(a.store)}" data-status="${text(a.status)}"><b class="id">${text(a.store)}</b> ${statusTag(a.status)} ${linesCell(a.lines)}</div>`).join("");
    return `<tr data-order-id="${text(o.order_id)}"><td class="id"><code>${text(o.order_id)}</code></td>` +
      `<td>${text(o.fulfilment)}</td><td>${statusTag(o.status)}</td><td class="nowrap">${timeTag(o.at)}</td>` +
      `<td class="allocs">${allocs}</td></tr>`;
  }).join("") || `<tr><td colspan="5" class="muted">No ${v.status === "open" ? "open" : text(v.status)} orders.</td></tr>`;
  const c = counts.orders || {};
  let caption;
  if (v.status === "open") {
    const open = (c.allocated || 0) + (c.picked || 0);
    caption = page.orders.length < open
      ? `${page.orders.length} of ${open} shown (the first ${ORDERS_PAGE} allocated and ${ORDERS_PAGE} picked by order id), waiting longest first`
      : "waiting longest first";
  } else {
    const first = v.before.length * ORDERS_PAGE;
    caption = page.orders.length
      ? `${first + 1}–${first + page.orders.length} of ${c[v.status] ?? "?"}, by order id` : "";
  }
  $("orders-caption").textContent = caption;
  $("orders-prev").hidden = v.before.length === 0;
  $("orders-next").hidden = !page.next;
  v.next = page.next;
}

async function refreshOrders() {
  const gen = orderGen;
  const page = await fetchOrders();
  if (gen !== orderGen) return;
  renderOrders(page);
  renderOrderCounts();
}

// Shows another status, or another page of it, at once.
function showOrders(change) {
  change(orderView);
  orderGen++;
  $("order-status").value = orderView.status;
  renderOrderCounts();
  refreshOrders().catch((e) => {
    if (e instanceof AuthError) return logout(e.message);
    $("orders-caption").textContent = e.message;
  });
}

async function fetchTransfers() {
  const [transit, received] = await Promise.all([
    api(`/v1/transfers?status=in_transit&limit=${TRANSIT_SHOWN}`),
    api(`/v1/transfers?status=received&order=recent&limit=${RECEIVED_SHOWN}`),
  ]);
  return { transit: list(transit, "transfers"), received: list(received, "transfers") };
}

function renderTransfers(t) {
  const c = counts.transfers || {};
  const inTransit = c.in_transit || 0, received = c.received || 0;
  // Overdue first, then the oldest sent.
  const transit = [...t.transit].sort((a, b) => (b.overdue === true) - (a.overdue === true) ||
    instant(a.sent_at) - instant(b.sent_at));
  const ends = (x) => `<td class="id">${text(x.from_store)}</td><td class="id">${text(x.to_store)}</td>` +
    `<td class="num">${text(x.units)}</td><td>${linesCell(x.lines)}</td><td class="nowrap">${timeTag(x.sent_at)}</td>`;
  $("transit-body").innerHTML = transit.map((x) =>
    `<tr data-transfer-id="${text(x.transfer_id)}" class="${x.overdue === true ? "is-overdue" : ""}"><td class="id"><code>${text(x.transfer_id)}</code></td>${ends(x)}` +
    `<td>${x.overdue === true
      ? `<span class="badge overdue" data-testid="overdue" title="in transit longer than the hub allows: not received at its destination">overdue</span>`
      : statusTag("in_transit")}</td></tr>`).join("") ||
    `<tr><td colspan="7" class="muted">Nothing in transit.</td></tr>`;
  $("received-body").innerHTML = t.received.map((x) =>
    `<tr data-transfer-id="${text(x.transfer_id)}"><td class="id"><code>${text(x.transfer_id)}</code></td>${ends(x)}` +
    `<td class="nowrap">${timeTag(x.received_at)}</td></tr>`).join("") ||
    `<tr><td colspan="7" class="muted">No transfer received yet.</td></tr>`;
  const overdue = transit.filter((x) => x.overdue === true).length;
  $("transfer-counts").innerHTML =
    `<span class="count"><b>${text(inTransit)}</b> in transit</span>` +
    `<span class="count${overdue ? " warn" : ""}"><b>${text(overdue)}</b> overdue${transit.length < inTransit ? " (of those shown)" : ""}</span>` +
    `<span class="count"><b>${text(received)}</b> received</span>`;
  $("transit-caption").textContent = transit.length < inTransit
    ? `(${transit.length} of ${inTransit} shown, overdue first)` : (transit.length ? "(overdue first, then oldest sent)" : "");
  $("received-caption").textContent = t.received.length
    ? (received > t.received.length ? `(the latest ${t.received.length} of ${received}, newest first)` : "(newest first)") : "";
  $("sum-transfers").innerHTML = `<b>${text(inTransit)}</b> in transit`;
  $("sum-transfers").classList.toggle("warn", overdue > 0);
}

const RETURNS_SHOWN = 20;

function renderReturns(body) {
  const rows = list(body, "returns");
  $("returns-body").innerHTML = rows.map((r) =>
    `<tr data-return-id="${text(r.return_id)}"><td class="id">${text(r.store)}</td>` +
    `<td class="id">${text(r.original_store)}</td>` +
    `<td>${r.original_kind === "order" ? "web order" : "sale"} <code>${text(r.original_id)}</code></td>` +
    `<td>${(r.units || []).map((u) => `${text(u.units)} × <code>${text(u.gtin)}</code>`).join(", ")}</td>` +
    `<td class="num">${text(money(r.refund_minor))}</td>` +
    `<td>${r.checked === true ? "by the hub" : `<span class="badge overdue" title="taken while the store could not ask the hub">offline</span>`}</td>` +
    `<td class="nowrap">${timeTag(r.at)}</td></tr>`).join("") ||
    `<tr><td colspan="7" class="muted">No return across stores yet.</td></tr>`;
}

function renderStock(s) {
  const stores = Object.entries(s.stores || {});
  const max = Math.max(1, ...stores.map(([, v]) => (v.store_rights || 0) + (v.hub_rights || 0)));
  $("stock").innerHTML =
    `<p data-testid="stock-total">${s.name ? `<b data-testid="stock-name">${text(s.name)}</b>, ` : ""}GTIN <code>${text(s.gtin)}</code>: <b>${text(s.on_hand)}</b> on hand chain-wide.</p>` +
    (stores.length ? "" : `<p class="muted">No store has stock history for this item.</p>`) +
    `<table${stores.length ? "" : " hidden"}><thead><tr><th>Store</th><th class="num">On hand</th><th class="num">Store rights</th><th class="num">Hub rights</th><th>Who holds the rights</th></tr></thead><tbody>` +
    stores.map(([id, v]) => {
      const sw = 100 * (v.store_rights || 0) / max, hw = 100 * (v.hub_rights || 0) / max;
      return `<tr data-store="${text(id)}"><td class="id">${text(id)}</td><td class="num">${text(v.on_hand)}</td><td class="num">${text(v.store_rights)}</td><td class="num">${text(v.hub_rights)}</td>` +
        `<td><div class="bar" title="store ${v.store_rights} / hub ${v.hub_rights}"><span class="s" style="width:${sw}%"></span><span class="h" style="width:${hw}%"></span></div></td></tr>`;
    }).join("") + `</tbody></table>` +
    `<div class="legend"><span><i style="background:var(--store)"></i>store may sell</span><span><i style="background:var(--hub)"></i>hub reserve for online orders</span></div>`;
}

// Units sold per store over the API's window. Minutes with no sales are
// absent from the API: they are zeros here, on a time axis that spans the
// whole window, so a store that sold in one minute still shows and a gap
// reads as no sales. Points are summed into about 12 buckets.
// A store offline is drawn up to its last sync only: what it sold since
// is not known yet (its sales arrive with their own times when it syncs),
// not zero.
function renderChart(body, storesBody) {
  const series = body.stores || {};
  // A Map: store ids are anything, "constructor" included.
  const offlineSince = new Map(list(storesBody || {}, "stores")
    .filter((s) => !s.online && s.last_sync_at && !isNaN(Date.parse(s.last_sync_at)))
    .map((s) => [s.store, Date.parse(s.last_sync_at) / 1000]));
  const names = Object.keys(series).sort();
  const svg = $("chart");
  const W = 1160, H = 220, left = 36, right = 12, top = 12, bottom = 24; // the viewBox
  const minutes = body.minutes || 60;
  const step = 60 * Math.max(1, Math.round(minutes / 12));
  // The axis covers the API's window and every point it sent, whatever
  // the viewer's clock says.
  const times = names.flatMap((n) => series[n].map((p) => p.t));
  const now = Date.now() / 1000;
  const end = Math.ceil(Math.max(now, ...times.map((t) => t + 60)) / step) * step;
  const start = Math.floor(Math.min(now - minutes * 60, ...times) / step) * step;
  const n = Math.round((end - start) / step);
  const buckets = names.map((name) => {
    const v = new Array(n).fill(0);
    for (const p of series[name]) {
      const i = Math.floor((p.t - start) / step);
      if (i >= 0 && i < n) v[i] += p.units;
    }
    return v;
  });
  const totals = buckets.map((v) => v.reduce((a, b) => a + b, 0));
  $("chart-caption").textContent = `(units per ${step / 60} min, last ${minutes} min)`;
  if (!totals.some((t) => t > 0)) {
    svg.innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle" class="axis">No sales in the last ${minutes} min.</text>`;
    $("legend").innerHTML = "";
    return;
  }
  const peak = Math.max(1, ...buckets.flat());
  const ymax = niceCeil(peak);
  const x = (i) => left + (W - left - right) * (i + 0.5) / n;
  const y = (v) => H - bottom - (H - top - bottom) * v / ymax;
  const hhmm = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const grid = [0, ymax / 2, ymax].map((v) =>
    `<line x1="${left}" x2="${W - right}" y1="${y(v)}" y2="${y(v)}" class="grid"/>` +
    `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" class="axis">${v}</text>`).join("");
  const ticks = [0, Math.round(n / 2), n].map((i, k) =>
    `<text x="${left + (W - left - right) * i / n}" y="${H - 6}" text-anchor="${["start", "middle", "end"][k]}" class="axis">${hhmm(start + i * step)}</text>`).join("");
  // The last bucket known of each store (an offline one: its last sync's).
  // (-1: offline since before the chart begins, no line.)
  const known = names.map((name) => offlineSince.has(name)
    ? Math.min(n - 1, Math.max(-1, Math.floor((offlineSince.get(name) - start) / step))) : n - 1);
  const lines = names.map((name, i) => {
    if (known[i] < 0) return "";
    const d = buckets[i].slice(0, known[i] + 1)
      .map((v, j) => (j ? "L" : "M") + x(j).toFixed(1) + " " + y(v).toFixed(1)).join(" ");
    const offline = offlineSince.has(name);
    const title = offline ? `${name}: offline since ${hhmm(offlineSince.get(name))}, later sales not in yet` : name;
    return `<path data-store="${text(name)}"${offline ? ' data-offline="true"' : ""} d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2.5" stroke-linejoin="round"><title>${text(title)}</title></path>`;
  }).join("");
  svg.innerHTML = grid + ticks + lines;
  $("legend").innerHTML = names.map((name, i) =>
    `<span data-store="${text(name)}"><i style="background:${COLORS[i % COLORS.length]}"></i>${text(name)}` +
    (offlineSince.has(name) ? ` <span class="muted">(offline since ${text(hhmm(offlineSince.get(name)))})</span>` : "") +
    ` <b>${totals[i]}</b> units</span>`).join("");
}

// The smallest of 1, 2, 5 × 10^k at or above v.
function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  return [1, 2, 5, 10].map((m) => m * p).find((c) => c >= v);
}

async function lookup(gtin) {
  $("stock-error").textContent = "";
  try {
    renderStock(await api("/v1/stock/" + encodeURIComponent(gtin)));
    lastGtin = gtin;
  } catch (e) {
    if (e instanceof AuthError) return logout(e.message);
    // Never leave the previous item's stock under the new item's error.
    lastGtin = null;
    $("stock").innerHTML = "";
    $("stock-error").textContent = e.message;
  }
}

// One refresh at a time: a slow hub must not have two of them fetch the
// same exceptions page.
let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const gen = orderGen;
    const [stores, , sales, stats, orders, transfers, returns] = await Promise.all([
      api("/v1/stores"), fetchExceptions(), api("/v1/stats/sales").catch(() => ({ stores: {} })),
      api("/v1/stats/orders"), fetchOrders(), fetchTransfers(),
      api(`/v1/returns?limit=${RETURNS_SHOWN}`),
    ]);
    counts = { orders: stats.orders || {}, transfers: stats.transfers || {} };
    renderStores(stores);
    renderExceptions();
    renderChart(sales, stores);
    if (gen === orderGen) renderOrders(orders);
    renderOrderCounts();
    renderTransfers(transfers);
    renderReturns(returns);
    const gtin = lastGtin;
    if (gtin) {
      const stock = await api("/v1/stock/" + encodeURIComponent(gtin));
      if (gtin === lastGtin) renderStock(stock);
    }
    $("refreshed").textContent = "Last refresh " + new Date().toLocaleTimeString() + ".";
    document.body.dataset.loaded = "true";
  } catch (e) {
    if (e instanceof AuthError) return logout(e.message);
    $("refreshed").textContent = "Refresh failed: " + e.message;
  } finally {
    refreshing = false;
  }
}

function show(loggedIn) {
  $("login").hidden = loggedIn;
  $("app").hidden = !loggedIn;
  $("logout").hidden = !loggedIn;
}

async function login(t) {
  token = t.trim();
  try {
    await api("/v1/stores");
  } catch (e) {
    $("login-error").textContent = e instanceof AuthError ? "That token was refused." : e.message;
    return;
  }
  sessionStorage.setItem("tally-admin-token", token);
  $("login-error").textContent = "";
  show(true);
  await refresh();
  clearInterval(timer);
  timer = setInterval(refresh, 2000);
}

function logout(message) {
  clearInterval(timer);
  exceptions = { list: [], next: 0, total: 0, open: 0, started: false };
  ackOpen = null;
  orderView = { status: "open", after: "", before: [], next: null };
  orderGen++;
  $("order-status").value = "open";
  lastGtin = null;
  delete document.body.dataset.loaded;
  sessionStorage.removeItem("tally-admin-token");
  token = "";
  show(false);
  $("login-error").textContent = message || "";
}

$("login-form").addEventListener("submit", (ev) => { ev.preventDefault(); login($("token").value); });
$("stock-form").addEventListener("submit", (ev) => { ev.preventDefault(); lookup($("gtin").value.trim()); });
$("logout").addEventListener("click", () => logout());
$("order-status").addEventListener("change", (ev) => showOrders((v) => {
  v.status = ev.target.value; v.after = ""; v.before = [];
}));
$("order-counts").addEventListener("click", (ev) => {
  const chip = ev.target.closest("button[data-status]");
  if (chip) showOrders((v) => { v.status = chip.dataset.status; v.after = ""; v.before = []; });
});
$("orders-next").addEventListener("click", () => showOrders((v) => {
  if (v.next) { v.before.push(v.after); v.after = v.next; }
}));
$("orders-prev").addEventListener("click", () => showOrders((v) => { v.after = v.before.pop() ?? ""; }));
$("reviewer").value = sessionStorage.getItem("tally-reviewer") || "";
$("open-only").addEventListener("change", () => { ackOpen = null; renderExceptions(); });
$("exceptions-body").addEventListener("click", (ev) => {
  const open = ev.target.closest("button[data-ack]");
  if (open) { ackOpen = Number(open.dataset.ack); $("ack-error").textContent = ""; renderExceptions(); return; }
  if (ev.target.closest("button[data-ack-cancel]")) { ackOpen = null; renderExceptions(); }
});
$("exceptions-body").addEventListener("submit", (ev) => {
  const form = ev.target.closest("form[data-ack-form]");
  if (!form) return;
  ev.preventDefault();
  acknowledge(Number(form.dataset.ackForm), form.elements.note.value.trim());
});
if (token) login(token); else show(false);
