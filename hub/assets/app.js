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
function list(body, key) { return Array.isArray(body) ? body : (body[key] || []); }

function renderStores(body) {
  const stores = list(body, "stores");
  $("stores-body").innerHTML = stores.map((s) => {
    const id = s.store;
    const online = !!s.online;
    return `<tr data-store="${text(id)}"><td><b>${text(id)}</b></td>` +
      `<td><span class="pill ${online ? "online" : "offline"}">${online ? "online" : "offline"}</span></td>` +
      // The lag is the hub's own count: the viewer's clock may be off.
      `<td>${timeTag(s.last_sync_at)}</td><td>${text(duration(s.seconds_since_last_sync || 0))} ago</td>` +
      `<td>${text(s.events_received ?? 0)}</td></tr>`;
  }).join("") || `<tr><td colspan="5" class="muted">No store has synced yet.</td></tr>`;
  const online = stores.filter((s) => s.online).length;
  const events = stores.reduce((a, s) => a + (s.events_received || 0), 0);
  $("summary").innerHTML =
    `<span class="stat" data-testid="stores-online"><b>${online}</b>/${stores.length} stores online</span>` +
    `<span class="stat"><b>${events}</b> events received</span>`;
}

// Exceptions come oldest first, paged by id (`since`, `next`), at most
// 1,000 a call: the page keeps a cursor, fetches only what is new on each
// refresh and shows the newest.
const EXCEPTIONS_PAGE = 1000, EXCEPTIONS_KEPT = 1000, EXCEPTIONS_SHOWN = 100;
let exceptions = { list: [], next: 0, total: 0 };

async function fetchExceptions() {
  for (let pages = 0; pages < 20; pages++) {
    const body = await api(`/v1/exceptions?since=${exceptions.next}&limit=${EXCEPTIONS_PAGE}`);
    const got = list(body, "exceptions");
    exceptions.list.push(...got);
    exceptions.list.splice(0, Math.max(0, exceptions.list.length - EXCEPTIONS_KEPT));
    exceptions.total += got.length;
    if (typeof body.next === "number") exceptions.next = body.next;
    if (got.length < EXCEPTIONS_PAGE) break;
  }
}

function exceptionDetail(e) {
  const d = e.detail || {};
  if (d.epc) {
    const stores = [...new Set((d.sales || []).map((s) => s.store))];
    return "EPC " + d.epc + (stores.length > 1 ? " sold by " + stores.join(" and ")
      : stores.length ? " sold twice by " + stores[0] : "");
  }
  if (d.approver || d.reason) {
    const short = (d.shortfall || []).map((s) => s.units + " × " + s.gtin).join(", ");
    return ["approved by " + (d.approver || "?"), d.reason].filter(Boolean).join(": ") +
      (short ? " (beyond rights: " + short + ")" : "");
  }
  if (d.unresolved) return d.unresolved + " units of " + d.gtin + " missing, rights held elsewhere";
  return "";
}

function renderExceptions() {
  const rows = exceptions.list.slice(-EXCEPTIONS_SHOWN).reverse();
  $("exceptions-body").innerHTML = rows.map((e) => {
    const kind = e.kind || "exception";
    // UUIDv7 ids begin with the time (the same for events a minute apart):
    // show their random end, the whole id on hover.
    const ids = (e.event_ids || []).map((i) =>
      `<code data-event-id="${text(i)}" title="${text(i)}">…${text(String(i).slice(-8))}</code>`).join(" ");
    return `<tr data-kind="${text(kind)}"><td>${text(kind.replace(/_/g, " "))}</td><td>${text(e.store)}</td>` +
      `<td>${text(exceptionDetail(e))}</td><td>${ids}</td><td>${timeTag(e.at)}</td></tr>`;
  }).join("") || `<tr><td colspan="5" class="muted">No exceptions.</td></tr>`;
  $("exceptions-count").textContent = !exceptions.total ? ""
    : `${exceptions.total} in all, newest first` + (exceptions.total > rows.length ? `, latest ${rows.length} shown` : "");
}

function renderStock(s) {
  const stores = Object.entries(s.stores || {});
  const max = Math.max(1, ...stores.map(([, v]) => (v.store_rights || 0) + (v.hub_rights || 0)));
  $("stock").innerHTML =
    `<p data-testid="stock-total">GTIN <code>${text(s.gtin)}</code>: <b>${text(s.on_hand)}</b> on hand chain-wide.</p>` +
    `<table><thead><tr><th>Store</th><th>On hand</th><th>Store rights</th><th>Hub rights (online reserve)</th><th>Who holds the rights</th></tr></thead><tbody>` +
    stores.map(([id, v]) => {
      const sw = 100 * (v.store_rights || 0) / max, hw = 100 * (v.hub_rights || 0) / max;
      return `<tr data-store="${text(id)}"><td>${text(id)}</td><td>${text(v.on_hand)}</td><td>${text(v.store_rights)}</td><td>${text(v.hub_rights)}</td>` +
        `<td><div class="bar" title="store ${v.store_rights} / hub ${v.hub_rights}"><span class="s" style="width:${sw}%"></span><span class="h" style="width:${hw}%"></span></div></td></tr>`;
    }).join("") + `</tbody></table>` +
    `<div class="legend"><span><i style="background:var(--store)"></i>store may sell</span><span><i style="background:var(--hub)"></i>hub reserve for online orders</span></div>`;
}

function renderChart(body) {
  const series = body.stores || {};
  const names = Object.keys(series).sort();
  const points = names.flatMap((n) => series[n]);
  const svg = $("chart");
  if (!points.length) { svg.innerHTML = `<text x="20" y="90" fill="#6b7385">No sales yet.</text>`; $("legend").innerHTML = ""; return; }
  const t0 = Math.min(...points.map((p) => p.t)), t1 = Math.max(...points.map((p) => p.t), t0 + 1);
  const vmax = Math.max(1, ...points.map((p) => p.units));
  const x = (t) => 10 + 700 * (t - t0) / (t1 - t0), y = (v) => 170 - 160 * v / vmax;
  svg.innerHTML = names.map((n, i) => {
    const d = series[n].map((p, j) => (j ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p.units).toFixed(1)).join(" ");
    return `<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2"><title>${text(n)}</title></path>`;
  }).join("");
  $("legend").innerHTML = names.map((n, i) => `<span><i style="background:${COLORS[i % COLORS.length]}"></i>${text(n)}</span>`).join("");
  $("chart-caption").textContent = `(units per ${body.bucket_seconds || 60} s, peak ${vmax})`;
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

async function refresh() {
  try {
    const [stores, , sales] = await Promise.all([
      api("/v1/stores"), fetchExceptions(), api("/v1/stats/sales").catch(() => ({ stores: {} })),
    ]);
    renderStores(stores);
    renderExceptions();
    renderChart(sales);
    if (lastGtin) renderStock(await api("/v1/stock/" + encodeURIComponent(lastGtin)));
    $("refreshed").textContent = "Last refresh " + new Date().toLocaleTimeString() + ".";
    document.body.dataset.loaded = "true";
  } catch (e) {
    if (e instanceof AuthError) return logout(e.message);
    $("refreshed").textContent = "Refresh failed: " + e.message;
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
  exceptions = { list: [], next: 0, total: 0 };
  sessionStorage.removeItem("tally-admin-token");
  token = "";
  show(false);
  $("login-error").textContent = message || "";
}

$("login-form").addEventListener("submit", (ev) => { ev.preventDefault(); login($("token").value); });
$("stock-form").addEventListener("submit", (ev) => { ev.preventDefault(); lookup($("gtin").value.trim()); });
$("logout").addEventListener("click", () => logout());
if (token) login(token); else show(false);
