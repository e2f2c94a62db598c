// Sightline dashboard: a small single-page app over the collector's JSON API. Everything it
// shows comes from /api/v1 with the session cookie; tables are sorted and paged by the server.
// Data is only ever inserted as text (never as HTML), so nothing a device reports can run here.
"use strict";

const main = document.getElementById("main");
let role = null;

// ---- DOM helpers ------------------------------------------------------------------------

const svgNs = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function badge(text, cls) {
  return text === null || text === undefined ? "" : el("span", { class: "badge " + (cls || text) }, text);
}

function link(href, text, attrs) {
  return el("a", Object.assign({ href }, attrs || {}), text);
}

// Children may be nested arrays, null or text, as `el` takes them.
function nodes(children) {
  return children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
}

function show(...children) {
  main.replaceChildren(...nodes(children));
}

function put(parent, ...children) {
  parent.append(...nodes(children));
}

// What people call a thing, with its identity on hover: a connector by the catalog's name
// (the server's `display_name`), a device by its hostname.
function connectorLink(key, name) {
  return link("#/connector/" + enc(key), name || key, { title: key, "data-id": key });
}

function deviceLink(id, hostname) {
  return link("#/device/" + enc(id), hostname || id, { title: id, "data-id": id });
}

// Tables can be wider than a phone: they scroll inside their box, not the page.
function scroll(table) {
  return el("div", { class: "scroll" }, table);
}

// ---- API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, opts) {
  const o = Object.assign({ credentials: "same-origin", headers: {} }, opts || {});
  if (o.body !== undefined) {
    o.headers["Content-Type"] = "application/json";
    o.body = JSON.stringify(o.body);
  }
  if (o.method && o.method !== "GET") o.headers["X-Sightline-CSRF"] = "1";
  const r = await fetch(path, o);
  if (r.status === 401) {
    role = null;
    renderLogin();
    throw new ApiError(401, "signed out");
  }
  const text = await r.text();
  const body = text ? JSON.parse(text) : null;
  if (!r.ok) throw new ApiError(r.status, (body && (body.error || body.detail)) || r.statusText);
  return body;
}

function enc(s) {
  return encodeURIComponent(s);
}

// ---- routing --------------------------------------------------------------------------------

function parseHash() {
  const h = location.hash.replace(/^#/, "") || "/";
  const [path, query] = h.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params };
}

function go(path, params) {
  const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)).toString() : "";
  location.hash = "#" + path + (q ? "?" + q : "");
}

async function route() {
  if (!role) return;
  const { parts, params } = parseHash();
  const page = parts[0] || "overview";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.nav === page);
  try {
    switch (page) {
      case "overview": return await renderOverview();
      case "devices": return await renderTable("devices", params);
      case "device": return await renderDevice(parts[1]);
      case "connectors": return await renderTable("connectors", params);
      case "connector": return await renderConnector(parts.slice(1).join("/"));
      case "people": return await renderTable("people", params);
      case "person": return await renderPerson(parts[1]);
      case "findings": return await renderTable("findings", params);
      case "activity": return await renderActivity(params);
      case "triage": return await renderTriage(params);
      case "reviews": return await renderReviews();
      case "review": return await renderReview(parts[1]);
      default: show(el("p", { class: "error" }, "No such page."));
    }
  } catch (e) {
    if (e.status !== 401) show(el("p", { class: "error", "data-testid": "error" }, e.message));
  }
}

// ---- sign-in ----------------------------------------------------------------------------------

// Whether the collector has an OpenID provider (`serve --oidc-*`): asked once.
let ssoOffered = null;
async function ssoEnabled() {
  if (ssoOffered === null) {
    ssoOffered = await fetch("/ui/oidc", { credentials: "same-origin" })
      .then((r) => r.json()).then((b) => b.enabled === true).catch(() => false);
  }
  return ssoOffered;
}

function renderLogin(message) {
  document.getElementById("top").hidden = true;
  // SSO first when configured; the API-token form stays as the break-glass way in.
  const sso = el("p", { class: "sso" }, el("a", { class: "button primary", href: "/ui/oidc/login", "data-testid": "sso" }, "Sign in with SSO"));
  sso.hidden = true;
  ssoEnabled().then((on) => { sso.hidden = !on; });
  const input = el("input", { type: "password", id: "token", name: "token", autocomplete: "off", placeholder: "sla_…", required: true });
  const form = el("form", { class: "login", "data-testid": "login" },
    el("h1", {}, "Sightline"),
    sso,
    el("p", { class: "muted" }, "Sign in with an API token (viewer or admin), from ", el("code", {}, "sightline-server api-token create"), "."),
    el("label", { for: "token" }, "API token"), input,
    message ? el("p", { class: "error" }, message) : null,
    el("button", { class: "primary", type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await fetch("/api/v1/session", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Sightline-CSRF": "1" }, body: JSON.stringify({ token: input.value }),
      });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) return renderLogin(body.error || "Sign-in failed.");
      await start();
    } catch (e) {
      renderLogin(e.message);
    }
  });
  show(form);
  input.focus();
}

async function start() {
  try {
    const me = await fetch("/api/v1/session", { credentials: "same-origin" });
    if (!me.ok) return renderLogin();
    role = (await me.json()).role;
  } catch (e) {
    return renderLogin(e.message);
  }
  document.getElementById("top").hidden = false;
  document.getElementById("who").textContent = "signed in as " + role;
  await route();
}

document.getElementById("signout").addEventListener("click", async () => {
  await fetch("/api/v1/session", { method: "DELETE", credentials: "same-origin", headers: { "X-Sightline-CSRF": "1" } });
  role = null;
  renderLogin();
});

window.addEventListener("hashchange", route);
start();

// ---- overview -------------------------------------------------------------------------------

function card(title, big, rows, testid) {
  return el("div", { class: "card", "data-testid": testid },
    el("div", { class: "muted" }, title),
    big !== null ? el("div", { class: "big", "data-testid": testid + "-total" }, big) : null,
    rows && rows.length === 0 ? el("p", { class: "muted" }, "none yet") : null,
    rows && rows.length ? el("dl", {}, rows.map(([k, v, href]) => [el("dt", {}, href ? link(href, k) : k), el("dd", {}, v)])) : null);
}

// What to do when there is nothing to show yet: enroll a device.
function enrollHelp() {
  return el("div", { class: "card empty", "data-testid": "empty-devices" },
    el("p", {}, el("strong", {}, "No devices enrolled yet."), " Enroll one to start the inventory:"),
    el("ol", {},
      el("li", {}, "On the collector, create a one-time enrollment token: ", el("code", {}, "sightline-server token create --data-dir DIR")),
      el("li", {}, "On the laptop: ", el("code", {}, "sightline-agent enroll --server https://COLLECTOR:8443 --token TOKEN --ca ca.pem"),
        " then run ", el("code", {}, "sightline-agent run"), " (the packages install it as a service)."),
      el("li", {}, "Its first report appears here within a minute.")));
}

async function renderOverview() {
  const o = await api("/api/v1/views/overview");
  const d = o.devices;
  const ls = d.last_seen;
  show(
    el("h1", {}, "Fleet overview"),
    d.total === 0 ? enrollHelp() : null,
    el("div", { class: "cards" },
      card("Devices", d.total, d.by_assurance.map((x) => [x.key, x.count, "#/devices?assurance=" + enc(x.key)]), "devices"),
      card("Operating systems", null, d.by_os.map((x) => [x.key, x.count]), "os"),
      card("Last seen", null, [["within an hour", ls.hour], ["within a day", ls.day], ["within a week", ls.week], ["longer ago", ls.older], ["never", ls.never]], "last-seen"),
      card("Connectors", o.connectors.total,
        Object.entries(o.connectors.by_status).map(([k, v]) => [k, v, "#/connectors?status=" + enc(k)]), "connectors"),
      card("By kind", null, Object.entries(o.connectors.by_kind).map(([k, v]) => [k, v, "#/connectors?kind=" + enc(k)]), "kinds"),
      card("Open findings", o.findings.total,
        Object.entries(o.findings.by_kind).map(([k, v]) => [k, v, "#/findings?kind=" + enc(k)]), "findings")),
    el("h2", {}, "Shadow-AI connectors present, last 30 days"),
    o.policy_judges ? trendChart(o.trend) : policyHelp());
}

// Without an [approved] section nothing is judged, so there is no shadow AI to chart: say
// why and how to change that, rather than show an empty chart.
function policyHelp() {
  return el("div", { class: "card empty", "data-testid": "no-policy" },
    el("p", {}, el("strong", {}, "No policy approves anything yet,"), " so no connector is judged: every one stays ",
      badge("discovered"), " and none counts as shadow AI."),
    el("p", {}, "A policy lists the AI tools, browser extensions, token providers and MCP servers your organisation approves, " +
      "for everyone or per group of people; anything else present on a device is unsanctioned shadow AI. " +
      "Put it in ", el("code", {}, "policy.toml"), " in the collector's data directory and restart the collector, e.g.:"),
    el("pre", {}, "[approved]\ntools = [\"copilot_vscode\", \"cursor\"]\nproviders = [\"anthropic\"]"),
    el("p", { class: "muted" }, "An admin can also approve or mark a single connector unsanctioned from its page."));
}

function trendChart(points) {
  // Bars only in the SVG, stretched to the card; the labels are HTML text so they stay
  // readable at any width.
  const w = 300, h = 100;
  const peak = Math.max(0, ...points.map((p) => p.shadow_ai));
  const max = Math.max(1, peak);
  const bw = w / Math.max(1, points.length);
  const bars = points.map((p, i) => {
    const bh = h * (p.shadow_ai / max);
    return svg("rect", { class: "bar", x: i * bw + bw * 0.1, y: h - bh, width: bw * 0.8, height: bh },
      svg("title", {}, `${p.day}: ${p.shadow_ai}`));
  });
  const first = points.length ? points[0].day : "", last = points.length ? points[points.length - 1].day : "";
  return el("div", { class: "card trend", "data-testid": "trend" },
    el("div", { class: "muted axis" }, `${peak} at most on one day`),
    svg("svg", { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", role: "img", "aria-label": "shadow-AI connectors present per day" }, bars),
    el("div", { class: "muted axis dates" }, el("span", {}, first), el("span", {}, last)),
    peak === 0 ? el("p", { class: "muted", "data-testid": "trend-none" }, "No unsanctioned AI connector was present in the last 30 days.") : null);
}

// ---- tables ---------------------------------------------------------------------------------

const TABLES = {
  devices: {
    title: "Devices", endpoint: "/api/v1/views/devices", empty: enrollHelp,
    filters: [{ name: "assurance", options: ["", "hardware_attested", "hardware_unattested", "software"] }],
    columns: [
      { key: "hostname", label: "Hostname", sort: "hostname", render: (d) => deviceLink(d.device_id, d.hostname) },
      { key: "os", label: "OS", sort: "os", render: (d) => `${d.os} ${d.os_version}` },
      { key: "assurance", label: "Assurance", sort: "assurance", render: (d) => [badge(d.assurance), d.revoked_at ? badge("revoked device", "failed") : ""] },
      { key: "users", label: "Users", opt: true, render: (d) => d.users.join(", ") },
      { key: "last_seen", label: "Last seen", sort: "last_seen", render: (d) => fmtTime(d.last_seen_at) },
      { key: "enrolled", label: "Enrolled", sort: "enrolled", opt: true, render: (d) => fmtTime(d.enrolled_at) },
    ],
  },
  connectors: {
    title: "Connectors", endpoint: "/api/v1/views/connectors",
    empty: () => el("p", { class: "muted" }, "No AI connector has been reported yet. Enrolled agents report the AI tools, browser extensions, " +
      "tokens and MCP servers they find; if no device is enrolled, see ", link("#/devices", "Devices"), "."),
    filters: [
      { name: "kind", options: ["", "tool", "extension", "token", "mcp_server"] },
      { name: "status", options: ["", "discovered", "approved", "unsanctioned", "revoked", "removed"] },
    ],
    columns: [
      { key: "label", label: "What", sort: "label", render: (c) => connectorLink(c.key, c.display_name) },
      { key: "kind", label: "Kind", sort: "kind", render: (c) => c.kind },
      { key: "key", label: "Identity", opt: true, render: (c) => el("span", { class: "mono" }, c.key) },
      { key: "devices", label: "Devices", sort: "devices", num: true, render: (c) => `${c.present_on} / ${c.devices}` },
      { key: "owner", label: "Owner", sort: "owner", render: (c) => c.owner ? link("#/person/" + enc(c.owner), c.owner)
        : el("span", { class: "muted", title: c.owner_source === "shared" ? "held by several people: assign an owner" : "no account it is under is attributed to a person" }, c.owner_source === "shared" ? "shared" : "unknown") },
      { key: "users", label: "Accounts", opt: true, render: (c) => c.users.join(", ") },
      { key: "last_seen", label: "Last seen", sort: "last_seen", render: (c) => fmtTime(c.last_seen) },
      { key: "last_used", label: "Last used", opt: true, render: (c) => (c.last_used ? fmtTime(c.last_used) : el("span", { class: "muted" }, "—")) },
      { key: "status", label: "Status", sort: "status", render: (c) => [badge(c.status), c.revocation ? [" ", badge("revocation " + c.revocation, c.revocation)] : ""] },
    ],
  },
  people: {
    title: "People", endpoint: "/api/v1/views/people",
    empty: () => el("p", { class: "muted" }, "No people provisioned. Point your identity provider's SCIM provisioning (Okta, Entra ID) at ",
      el("code", {}, "/scim/v2"), " with a ", el("code", {}, "scim"), " API token to see who owns each device and connector."),
    filters: [{ name: "status", options: ["", "active", "deprovisioned"] }],
    rowClass: (p) => (p.active ? "" : "deprovisioned-row"),
    columns: [
      { key: "user_name", label: "User", sort: "user_name", render: (p) => link("#/person/" + enc(p.user_name), p.user_name) },
      { key: "display_name", label: "Name", render: (p) => p.display_name || "" },
      { key: "accounts", label: "OS accounts", render: (p) => p.accounts.join(", ") },
      { key: "active", label: "State", sort: "deprovisioned", render: (p) => (p.active ? badge("active") : [badge("deprovisioned"), " ", fmtTime(p.deprovisioned_at)]) },
    ],
  },
  findings: {
    title: "Findings", endpoint: "/api/v1/views/findings",
    empty: () => el("p", { class: "muted" }, "No findings: nothing needs a look right now."),
    filters: [
      { name: "kind", options: ["", "orphaned_connector", "unowned_connector", "shadow_ai", "shared_credential", "revocation_not_enforced", "personal_account_connector", "used_after_offboarding", "unsanctioned_connector_in_use", "software_key_device", "unattested_device", "stale_agent", "delivery_gap", "clock_skew"] },
      { name: "severity", options: ["", "critical", "high", "medium", "low"] },
    ],
    columns: [
      { key: "first_seen", label: "Since", sort: "first_seen", opt: true, render: (f) => fmtTime(f.first_seen) },
      { key: "severity", label: "Severity", sort: "severity", render: (f) => badge(f.severity) },
      { key: "kind", label: "Kind", sort: "kind", render: (f) => f.kind },
      { key: "subject", label: "Subject", sort: "subject", render: (f) => subjectLink(f.subject, f.subject_name) },
      { key: "device", label: "Device", render: (f) => (f.device_id ? deviceLink(f.device_id, f.hostname) : "") },
      { key: "evidence", label: "Evidence", opt: true, render: (f) => el("span", { class: "mono" }, evidenceSummary(f.evidence)) },
    ],
  },
};

function subjectLink(s, name) {
  if (/^(tool|extension|token|mcp):/.test(s)) return connectorLink(s, name);
  // Use of a tool or MCP server no connector matches: nothing to link to.
  if (s.startsWith("unknown:")) return el("span", { class: "mono unknown-connector", title: "matches no connector seen on the device" }, s);
  return deviceLink(s, name);
}

function evidenceSummary(e) {
  if (!e) return "";
  const keys = ["where", "owner", "os_user", "person", "status", "ended_at", "outcome", "detail", "dropped", "last_seen", "assurance"];
  return keys.filter((k) => e[k] !== undefined && e[k] !== null).map((k) => `${k}=${e[k]}`).join(" ");
}

async function renderTable(name, params) {
  const t = TABLES[name];
  const q = new URLSearchParams();
  for (const k of ["q", "sort", "order", "offset", "limit", "kind", "status", "severity", "assurance"]) {
    if (params.get(k)) q.set(k, params.get(k));
  }
  const data = await api(t.endpoint + "?" + q.toString());
  const current = Object.fromEntries(q.entries());
  const nav = (changes) => go("/" + name, Object.assign({}, current, changes));
  const search = el("input", { type: "search", name: "q", placeholder: "Search…", value: params.get("q") || "", "data-testid": "search" });
  const filters = el("form", { class: "filters" },
    search,
    t.filters.map((f) => {
      const s = el("select", { name: f.name, "data-testid": "filter-" + f.name },
        f.options.map((o) => el("option", { value: o, selected: (params.get(f.name) || "") === o }, o || "any " + f.name)));
      s.addEventListener("change", () => nav({ [f.name]: s.value, offset: "" }));
      return s;
    }),
    el("button", { type: "submit" }, "Search"));
  filters.addEventListener("submit", (ev) => { ev.preventDefault(); nav({ q: search.value, offset: "" }); });
  const sort = params.get("sort"), order = params.get("order") || "asc";
  const head = el("tr", {}, t.columns.map((c) => {
    // `opt` columns (details also on the row's page or on hover) give way on a phone.
    const cls = (c.sort ? "sortable" + (sort === c.sort ? " sorted-" + order : "") : "") + (c.opt ? " opt" : "");
    const th = el("th", { class: cls, "data-sort": c.sort || null }, c.label);
    if (c.sort) th.addEventListener("click", () => nav({ sort: c.sort, order: sort === c.sort && order === "asc" ? "desc" : "asc", offset: "" }));
    return th;
  }));
  const rows = data.items.map((item) => el("tr", { class: t.rowClass ? t.rowClass(item) : "" },
    t.columns.map((c) => el("td", { class: [c.num ? "num" : "", c.opt ? "opt" : ""].join(" ").trim() }, c.render(item)))));
  const filtered = ["q", "kind", "status", "severity", "assurance"].some((k) => params.get(k));
  if (data.total === 0) {
    // An empty table says why and what to do, not "0–0 of 0".
    return show(el("h1", {}, t.title), filters, el("div", { "data-testid": "empty" },
      filtered ? el("p", { class: "muted" }, "Nothing matches these filters. ", link("#/" + name, "Show all")) : t.empty()));
  }
  const from = data.offset + 1, to = data.offset + data.items.length;
  const pager = el("div", { class: "pager" },
    el("button", { type: "button", disabled: data.offset === 0, onclick: () => nav({ offset: Math.max(0, data.offset - data.limit) }) }, "‹ Previous"),
    el("span", { "data-testid": "range" }, `${from}–${to} of ${data.total}`),
    el("button", { type: "button", disabled: to >= data.total, onclick: () => nav({ offset: data.offset + data.limit }) }, "Next ›"));
  show(el("h1", {}, t.title), filters, pager,
    scroll(el("table", { "data-testid": name + "-table" }, el("thead", {}, head), el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: t.columns.length, class: "muted" }, "Past the last page: ", link("#/" + name, "back to the first")))))));
}

// ---- device ---------------------------------------------------------------------------------

function kv(pairs, testid) {
  return el("dl", { class: "kv", "data-testid": testid }, pairs.filter(Boolean).map(([k, v]) => [el("dt", {}, k), el("dd", {}, v === null || v === undefined || v === "" ? "—" : v)]));
}

function presenceTable(rows, withDevice) {
  return scroll(el("table", { "data-testid": "presence" },
    el("thead", {}, el("tr", {}, withDevice ? el("th", {}, "Device") : null, el("th", {}, "Kind"), el("th", {}, "What"),
      el("th", {}, "Account"), el("th", {}, "Where"), el("th", {}, "Appeared"), el("th", {}, "Gone"), el("th", {}, "Evidence"))),
    el("tbody", {}, rows.map((p) => el("tr", {},
      withDevice ? el("td", {}, deviceLink(p.device_id, p.hostname)) : null,
      el("td", {}, p.kind), el("td", {}, connectorLink(p.connector, p.display_name)),
      el("td", {}, p.user || "", p.owner ? [" → ", link("#/person/" + enc(p.owner), p.owner), " (", p.attribution, ")"] : ""),
      el("td", { class: "mono" }, p.where), el("td", {}, fmtTime(p.appeared_at)), el("td", {}, p.disappeared_at ? fmtTime(p.disappeared_at) : "present"),
      el("td", { class: "mono" }, "seq " + p.appeared_seq + (p.disappeared_seq ? "–" + p.disappeared_seq : "")))))));
}

// A device's findings, from the findings view filtered by device.
function findingsTable(items) {
  return scroll(el("table", { "data-testid": "device-findings" },
    el("thead", {}, el("tr", {}, el("th", { class: "opt" }, "Since"), el("th", {}, "Severity"), el("th", {}, "Kind"), el("th", {}, "Subject"), el("th", { class: "opt" }, "Evidence"))),
    el("tbody", {}, items.map((f) => el("tr", {}, el("td", { class: "opt" }, fmtTime(f.first_seen)), el("td", {}, badge(f.severity)), el("td", {}, f.kind),
      el("td", {}, subjectLink(f.subject, f.subject_name)), el("td", { class: "mono opt" }, evidenceSummary(f.evidence)))))));
}

async function renderDevice(id) {
  const [d, now, found, used] = await Promise.all([api("/api/v1/devices/" + enc(id)), api("/api/v1/triage/device/" + enc(id) + "?at=now"),
    api("/api/v1/views/findings?limit=500&device=" + enc(id)), recentSessions({ device: id })]);
  const sessions = now.sessions || [];
  show(
    el("h1", { "data-testid": "device-title" }, d.hostname, " ", badge(d.assurance)),
    kv([["Device id", el("span", { class: "mono" }, d.device_id)], ["OS", `${d.os} ${d.os_version}`], ["Agent", d.agent_version],
      ["Assurance", badge(d.assurance)], ["Key backend", d.key_backend], ["Key id", el("span", { class: "mono" }, d.key_id)],
      ["Hardware id (EK)", d.hardware_id ? el("span", { class: "mono" }, d.hardware_id) : "—"], ["Enrolled", fmtTime(d.enrolled_at)],
      ["Last attested", fmtTime(d.last_attested_at)], ["Last seen", fmtTime(d.last_seen_at)], ["Revoked", d.revoked_at ? fmtTime(d.revoked_at) : "no"],
      ["Evidence", `${d.observations} observations, sequence head ${d.seq_head}`]], "device-facts"),
    el("h2", {}, "Findings"),
    found.total ? findingsTable(found.items) : el("p", { class: "muted", "data-testid": "device-findings-none" }, "No findings."),
    el("h2", {}, "Logged in now"),
    sessions.length
      ? scroll(el("table", { "data-testid": "sessions" }, el("thead", {}, el("tr", {}, el("th", {}, "Account"), el("th", {}, "Terminal"), el("th", {}, "From"), el("th", {}, "Since"))),
        el("tbody", {}, sessions.map((s) => el("tr", {}, el("td", {}, s.os_user), el("td", {}, s.terminal), el("td", {}, s.host || ""), el("td", {}, fmtTime(s.since)))))))
      : el("p", { class: "muted" }, "Nobody, as of the last report."),
    el("h2", {}, "Connectors present now"),
    now.present.length ? presenceTable(now.present, false) : el("p", { class: "muted" }, "No AI connector is present, as of the last report."),
    recentActivity(used, { device: id }, "No AI tool session has been read on this device."),
    el("h2", {}, "Connector history"),
    d.history && d.history.length ? presenceTable(d.history, false) : el("p", { class: "muted" }, "No AI connector has been reported on this device."));
}

// ---- connector ------------------------------------------------------------------------------

async function renderConnector(key) {
  const [c, used] = await Promise.all([api("/api/v1/connectors/" + enc(key)), recentSessions({ connector: key })]);
  // The register's last use, else the newest session bound to it (the same fact, read here).
  const lastUsed = c.last_used || (used.sessions[0] && used.sessions[0].ended_at) || null;
  const actions = [];
  const act = async (what, fn) => {
    try { await fn(); await renderConnector(key); } catch (e) { if (e.status !== 401) alert(what + ": " + e.message); }
  };
  if (role === "admin") {
    actions.push(
      el("button", { type: "button", "data-testid": "approve", onclick: () => {
        const reason = prompt(`Approve ${c.display_name}? Reason (kept in its history):`, "");
        if (reason === null) return;
        const until = prompt("Approve for how long? (e.g. 30d; empty: until withdrawn)", "");
        if (until === null) return;
        const body = { status: "approved", reason };
        if (until.trim()) body.expires_in = until.trim();
        act("Approve", () => api(`/api/v1/connectors/${enc(key)}/status`, { method: "POST", body }));
      } }, "Approve"),
      el("button", { type: "button", "data-testid": "unsanction", onclick: () => {
        const reason = prompt(`Mark ${c.display_name} unsanctioned? Reason:`, "");
        if (reason === null) return;
        act("Mark unsanctioned", () => api(`/api/v1/connectors/${enc(key)}/status`, { method: "POST", body: { status: "unsanctioned", reason } }));
      } }, "Mark unsanctioned"),
      el("button", { type: "button", "data-testid": "assign-owner", onclick: () => {
        const person = prompt(`Business owner of ${c.display_name} (userName or e-mail):`, c.owner ? c.owner.user_name : "");
        if (person === null || !person.trim()) return;
        const reason = prompt("Why this owner? (kept in its history)", "");
        if (reason === null) return;
        act("Assign owner", () => api(`/api/v1/connectors/${enc(key)}/owner`, { method: "PUT", body: { person: person.trim(), reason } }));
      } }, "Assign owner"),
      el("button", { type: "button", onclick: () => act("Use policy", () => api(`/api/v1/connectors/${enc(key)}/status`, { method: "POST", body: { status: "policy" } })) }, "Follow policy file"));
    if (c.revocation) {
      actions.push(el("button", { type: "button", "data-testid": "withdraw", onclick: () => {
        if (!confirm(`Withdraw the revocation of ${c.display_name}? Unanswered directives are closed; what agents already did stays done.`)) return;
        act("Withdraw", () => api(`/api/v1/connectors/${enc(key)}/revoke`, { method: "DELETE" }));
      } }, "Withdraw revocation"));
    }
    if (c.kind !== "mcp_server") {
      actions.push(el("button", { type: "button", class: "danger", "data-testid": "revoke", onclick: () => {
        const reason = prompt(`Revoke ${c.display_name}? Every device that has it gets a signed directive; agents in enforce mode act on it. Reason:`, "");
        if (reason === null) return;
        act("Revoke", () => api(`/api/v1/connectors/${enc(key)}/revoke`, { method: "POST", body: { reason } }));
      } }, "Revoke"));
    }
  }
  const rev = c.revocation;
  show(
    el("h1", { "data-testid": "connector-title", title: c.key }, c.display_name, " ", el("span", { "data-testid": "status" }, badge(c.status))),
    kv([["Identity", el("span", { class: "mono" }, c.key)], ["Kind", c.kind], c.display_name !== c.label ? ["Reported as", c.label] : null, ["First seen", fmtTime(c.first_seen)], ["Last seen", fmtTime(c.last_seen)],
      ["Last used", el("span", { "data-testid": "last-used" }, lastUsed ? fmtTime(lastUsed) : "never, as far as the tools' records show")],
      ["Details", el("span", { class: "mono" }, ["tool", "extension_id", "name", "browser", "provider", "token_kind", "fingerprint", "source", "client", "transport", "command", "url"]
        .filter((k) => c[k] !== undefined && c[k] !== null).map((k) => `${k}=${c[k]}`).join("  "))]], "connector-facts"),
    actions.length ? el("div", { class: "actions" }, actions) : null,
    register(c),
    rev ? [el("h2", {}, "Revocation"),
      kv([["State", el("span", { "data-testid": "revocation-state" }, badge(rev.state))], ["Requested", fmtTime(rev.requested_at) + " by " + rev.requested_by], ["Reason", rev.reason]]),
      scroll(el("table", { "data-testid": "outcomes" }, el("thead", {}, el("tr", {}, el("th", {}, "Device"), el("th", {}, "Action"), el("th", {}, "Sent"), el("th", {}, "Outcome"), el("th", {}, "Detail"), el("th", {}, "Evidence"))),
        el("tbody", {}, rev.devices.map((d) => el("tr", {}, el("td", {}, deviceLink(d.device_id, d.hostname)), el("td", {}, d.action),
          el("td", {}, fmtTime(d.sent_at)), el("td", {}, d.outcome ? badge(d.outcome) : badge("pending")), el("td", {}, d.detail || ""), el("td", { class: "mono" }, d.outcome_seq ? "seq " + d.outcome_seq : ""))))))] : null,
    el("h2", {}, "Devices"),
    scroll(el("table", { "data-testid": "connector-devices" }, el("thead", {}, el("tr", {}, el("th", {}, "Device"), el("th", {}, "Account"), el("th", {}, "First seen"), el("th", {}, "Last seen"), el("th", {}, "Now"))),
      el("tbody", {}, c.devices.map((d) => el("tr", {}, el("td", {}, deviceLink(d.device_id, d.hostname)), el("td", {}, d.user || ""),
        el("td", {}, fmtTime(d.first_seen)), el("td", {}, fmtTime(d.last_seen)), el("td", {}, d.present ? "present" : "gone")))))),
    recentActivity(used, { connector: key }, "No AI tool session has used it, as far as the tools' records show."),
    el("h2", {}, "Presence timeline"),
    timeline(c.presence),
    presenceTable(c.presence, true));
}

// The register: who answers for it, who authorized it, why it has its status, where it came
// from, how to take it away, and what happened to it.
function register(c) {
  const o = c.owner;
  const owner = o ? [link("#/person/" + enc(o.user_name), o.user_name), o.display_name ? ` (${o.display_name})` : "", " ",
    badge(o.source === "assigned" ? "assigned" : "attributed, " + o.attribution), o.active ? "" : [" ", badge("deprovisioned", "failed")],
    o.reason ? el("div", { class: "muted" }, "Reason: " + o.reason) : ""] : el("span", { class: "muted" }, "nobody: no account it is under is attributed to one person");
  const a = c.authorized_by;
  const authorized = a ? [a.account, a.org ? ` (${a.org})` : "", " ", badge(a.class, a.class === "personal" ? "failed" : a.class === "corporate" ? "enforced" : "")]
    : el("span", { class: "muted" }, c.kind === "token" || c.kind === "tool" ? "not recorded (an API key carries no account)" : "—");
  const d = c.decision;
  const decision = d ? `${d.status} by ${d.decided_by}, ${fmtTime(d.decided_at)}` + (d.expires_at ? `, until ${fmtTime(d.expires_at)}` : "") + (d.reason ? ` — ${d.reason}` : "") : null;
  const org = c.origin;
  const m = c.revocation_method;
  return [el("h2", {}, "Register"),
    kv([["Owner", el("span", { "data-testid": "owner" }, owner)],
      ["Authorized by", el("span", { "data-testid": "authorized-by" }, authorized)],
      ["Status", [badge(c.status), " decided by ", el("span", { "data-testid": "status-source" }, c.status_source)]],
      decision ? ["Decision", el("span", { "data-testid": "decision" }, decision)] : null,
      org ? ["Origin", [deviceLink(org.device_id, org.hostname || org.device_id), ` as ${org.os_user || "?"}, ${fmtTime(org.first_seen)}, evidence seq ${org.appeared_seq}`, el("div", { class: "muted mono" }, org.place)]] : null,
      m ? ["Revoke", [m.local_action ? "on devices: " + m.local_action : "on devices: — " + (m.note || ""),
        m.provider_page && m.provider_page.startsWith("https://") ? el("div", {}, "at the provider: ", el("a", { href: m.provider_page, rel: "noopener noreferrer", target: "_blank" }, m.provider_page)) : (m.at_provider ? el("div", { class: "muted" }, m.at_provider) : "")]] : null,
    ], "register"),
    c.history && c.history.length ? [el("h3", {}, "History"), scroll(el("table", { "data-testid": "history" },
      el("thead", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "What"), el("th", {}, "Who"), el("th", {}, "Reason"))),
      el("tbody", {}, c.history.map((e) => el("tr", {}, el("td", {}, fmtTime(e.at)), el("td", {}, e.event), el("td", {}, e.actor), el("td", {}, e.reason || ""))))))] : null];
}

function timeline(rows) {
  if (!rows.length) return el("p", { class: "muted" }, "No presence recorded.");
  const t = (s) => Date.parse(s);
  const now = Date.now();
  const start = Math.min(...rows.map((p) => t(p.appeared_at)));
  const end = Math.max(now, ...rows.map((p) => (p.disappeared_at ? t(p.disappeared_at) : now)));
  const devices = [...new Set(rows.map((p) => p.hostname || p.device_id))];
  const w = 900, lh = 22, pad = 140, h = devices.length * lh + 24;
  const x = (v) => pad + ((w - pad - 10) * (v - start)) / Math.max(1, end - start);
  return el("div", { class: "card", "data-testid": "timeline" }, svg("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%" },
    devices.map((d, i) => svg("text", { x: 4, y: i * lh + 15 }, d.length > 20 ? d.slice(0, 19) + "…" : d)),
    rows.map((p) => {
      const i = devices.indexOf(p.hostname || p.device_id);
      const a = x(t(p.appeared_at)), b = x(p.disappeared_at ? t(p.disappeared_at) : now);
      return svg("rect", { class: "span" + (p.disappeared_at ? "" : " open"), x: a, y: i * lh + 4, width: Math.max(2, b - a), height: lh - 8 },
        svg("title", {}, `${p.where}: ${fmtTime(p.appeared_at)} → ${p.disappeared_at ? fmtTime(p.disappeared_at) : "present"}`));
    }),
    svg("text", { x: pad, y: h - 4 }, fmtTime(new Date(start).toISOString().slice(0, 19) + "Z")),
    svg("text", { x: w - 170, y: h - 4 }, fmtTime(new Date(end).toISOString().slice(0, 19) + "Z"))));
}

// ---- person ---------------------------------------------------------------------------------

async function renderPerson(user) {
  const [t, used] = await Promise.all([api("/api/v1/people/" + enc(user)), recentSessions({ user })]);
  const p = t.person;
  const gone = !p.active || p.deprovisioned_at;
  show(
    el("h1", { "data-testid": "person-title" }, p.display_name || p.user_name, " ", gone ? badge("deprovisioned") : badge("active")),
    gone ? el("p", { class: "error", "data-testid": "deprovisioned" }, "Deprovisioned ", fmtTime(p.deprovisioned_at), ": anything still present below is an orphaned access path.") : null,
    kv([["userName", p.user_name], ["OS accounts", p.accounts.join(", ")]], "person-facts"),
    el("h2", {}, "Devices, sessions and connectors now"),
    t.devices.length ? t.devices.map((d) => el("div", { class: "card" },
      el("h2", {}, deviceLink(d.device_id, d.hostname), " ", badge(d.assurance)),
      d.sessions.length ? el("p", {}, "Logged in: ", d.sessions.map((s) => `${s.os_user} on ${s.terminal} since ${fmtTime(s.since)} (${s.attribution})`).join("; ")) : el("p", { class: "muted" }, "Not logged in now."),
      d.present.length ? presenceTable(d.present, false) : el("p", { class: "muted" }, "Nothing present."))) : el("p", { class: "muted" }, "No device reports this person now."),
    recentActivity(used, { user }, "No AI tool session is attributed to this person."),
    t.signins.length ? [el("h2", {}, "Identity-provider sign-ins (last 12 hours)"),
      scroll(el("table", {}, el("tbody", {}, t.signins.map((s) => el("tr", {}, el("td", {}, fmtTime(s.at)), el("td", {}, s.source), el("td", {}, s.outcome), el("td", {}, s.ip || ""), el("td", {}, s.app || ""))))))] : null);
}

// ---- activity -------------------------------------------------------------------------------

// Who used which AI tool and connector, on which device, when: the tools' own records of
// their sessions (metadata only: counts and names, never what was typed).
const ACTIVITY_FILTERS = ["user", "device", "connector", "since", "until"];
const RECENT = 10;

function activityQuery(filters, limit) {
  const q = new URLSearchParams();
  for (const k of ACTIVITY_FILTERS) if (filters[k]) q.set(k, filters[k]);
  if (limit) q.set("limit", String(limit));
  return "/api/v1/activity?" + q.toString();
}

function recentSessions(filters) {
  return api(activityQuery(filters, RECENT));
}

// A connector a session used: a link to its page; one that matches no connector seen on
// the device is use of an unknown AI tool, marked and not linked (it has no page).
function usedConnector(c) {
  if (!c.known) {
    return el("span", { class: "unknown-connector", title: c.key + ": matches no connector seen on the device", "data-id": c.key, "data-testid": "unknown-connector" },
      c.label, " ", badge("unknown", "failed"));
  }
  const flagged = c.status === "unsanctioned" || c.status === "revoked";
  return [connectorLink(c.key, c.label), flagged ? [" ", badge(c.status, "unsanctioned")] : ""];
}

function sessionPerson(s) {
  if (!s.person) return el("span", { class: "muted", title: "no person is attributed to this OS account" }, "unknown");
  const p = s.person;
  return [link("#/person/" + enc(p.user_name), p.display_name || p.user_name, { title: `${p.user_name} (${p.attribution})`, "data-id": p.user_name }),
    p.deprovisioned ? [" ", badge("deprovisioned")] : ""];
}

function span(s) {
  const day = (t) => fmtTime(t).slice(0, 10);
  const end = day(s.started_at) === day(s.ended_at) ? fmtTime(s.ended_at).slice(11) : fmtTime(s.ended_at);
  return [fmtTime(s.started_at), " → ", end];
}

function mcpCell(s) {
  return s.mcp.map((m, i) => [i ? ", " : "", el("span", { title: m.tools.join(", ") }, `${m.server} (${m.calls})`)]);
}

function activityTable(sessions, cols) {
  const has = (c) => !cols || cols.includes(c);
  const head = [["when", "When"], ["person", "Person"], ["account", "OS account"], ["device", "Device"], ["tool", "Tool"],
    ["connectors", "Connectors used"], ["prompts", "Prompts"], ["calls", "Tool calls"], ["mcp", "MCP servers"]].filter(([k]) => has(k));
  const num = new Set(["prompts", "calls"]), opt = new Set(["account", "mcp"]);
  const cell = (k, v) => el("td", { class: [num.has(k) ? "num" : "", opt.has(k) ? "opt" : ""].join(" ").trim() || null, "data-col": k }, v);
  return scroll(el("table", { "data-testid": "activity-table" },
    el("thead", {}, el("tr", {}, head.map(([k, label]) => el("th", { class: opt.has(k) ? "opt" : null }, label)))),
    el("tbody", {}, sessions.map((s) => el("tr", { "data-testid": "activity-row", "data-session": s.session_id, class: s.person && s.person.deprovisioned ? "deprovisioned-row" : null },
      head.map(([k]) => cell(k, {
        when: () => span(s),
        person: () => sessionPerson(s),
        account: () => s.os_user || "—",
        device: () => deviceLink(s.device_id, s.hostname),
        tool: () => s.tool,
        connectors: () => s.connectors.map((c, i) => [i ? ", " : "", usedConnector(c)]),
        prompts: () => s.prompts,
        calls: () => s.tool_calls,
        mcp: () => (s.mcp.length ? mcpCell(s) : "—"),
      }[k]())))))));
}

// A page's "recent AI use" section: the newest sessions and a link to all of them.
function recentActivity(page, filters, none) {
  const all = link("#/activity?" + new URLSearchParams(filters).toString(), page.total === 1 ? "the one session" : `all ${page.total} sessions`, { "data-testid": "activity-all" });
  return [el("h2", {}, "Recent AI use"),
    page.sessions.length
      ? el("div", { "data-testid": "recent-activity" }, activityTable(page.sessions), page.total > page.sessions.length ? el("p", {}, "Newest ", page.sessions.length, " of ", all, ".") : el("p", {}, all))
      : el("p", { class: "muted", "data-testid": "recent-activity-none" }, none)];
}

async function renderActivity(params) {
  const filters = Object.fromEntries(ACTIVITY_FILTERS.map((k) => [k, params.get(k) || ""]));
  const limit = Math.max(1, Math.min(1000, Number(params.get("limit")) || 100));
  const field = (name, placeholder, size) => el("input", { type: "search", name, value: filters[name], placeholder, size, "data-testid": "activity-" + name });
  const inputs = {
    user: field("user", "person (e-mail) or OS account", 26),
    device: field("device", "device id or hostname", 18),
    connector: field("connector", "connector (mcp:github, tool:claude_code)", 28),
    since: field("since", "since: 7d ago, 2026-11-29T10:00:00Z", 22),
    until: field("until", "until: now", 16),
  };
  const form = el("form", { class: "filters", "data-testid": "activity-filters" }, Object.values(inputs), el("button", { class: "primary", type: "submit" }, "Show"));
  // The filters live in the address: a view can be bookmarked and shared.
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    go("/activity", Object.fromEntries(ACTIVITY_FILTERS.map((k) => [k, inputs[k].value.trim()])));
  });
  const intro = el("p", { class: "muted" }, "AI tool sessions from the tools' own records (Claude Code, Codex, Gemini CLI, aider): who, where, when and through which connectors. " +
    "Only counts and names are collected, never prompts, answers or arguments.");
  let page;
  try {
    page = await api(activityQuery(filters, limit));
  } catch (e) {
    if (e.status === 400) return show(el("h1", {}, "AI activity"), form, el("p", { class: "error", "data-testid": "error" }, e.message));
    throw e;
  }
  const filtered = ACTIVITY_FILTERS.some((k) => filters[k]);
  if (!page.sessions.length) {
    return show(el("h1", {}, "AI activity"), form, intro, el("div", { "data-testid": "empty" },
      filtered ? el("p", { class: "muted" }, "No session matches these filters. ", link("#/activity", "Show all"))
        : el("p", { class: "muted" }, "No AI tool session has been read yet. Agents read the tools' session records unless configured with ", el("code", {}, 'activity = "off"'), ".")));
  }
  show(el("h1", {}, "AI activity"), form, intro,
    el("p", { "data-testid": "activity-range" }, page.sessions.length < page.total ? `Newest ${page.sessions.length} of ${page.total} sessions` : `${page.total} sessions`, ", newest first."),
    activityTable(page.sessions));
}

// ---- triage ---------------------------------------------------------------------------------

function toIso(local) {
  // The picker speaks UTC, like every time on these pages.
  return local ? local + (local.length === 16 ? ":00Z" : "Z") : "now";
}

async function renderTriage(params) {
  const q = params.get("q") || "";
  const at = params.get("at") || "";
  const input = el("input", { type: "search", name: "q", value: q, size: 48, placeholder: "email, device id or hostname, token fingerprint, extension id, connector", "data-testid": "triage-q" });
  const when = el("input", { type: "datetime-local", name: "at", value: at, step: 1, "data-testid": "triage-at" });
  const form = el("form", { class: "filters" }, input, el("label", {}, "at (UTC) ", when), el("button", { class: "primary", type: "submit" }, "Look up"));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); go("/triage", { q: input.value.trim(), at: when.value }); });
  const out = el("div", { "data-testid": "triage-result" });
  show(el("h1", {}, "Triage"), form, out);
  if (!q) return put(out, el("p", { class: "muted" }, "Who was on which device with which connector, at any instant — answered from the signed evidence."));
  const iso = toIso(at);
  if (q.includes("@")) {
    const t = await api(`/api/v1/triage/user/${enc(q)}?at=${enc(iso)}`);
    put(out, el("h2", {}, `${t.person.user_name} at ${fmtTime(t.at)}`),
      t.person.deprovisioned_at ? el("p", { class: "error" }, "Deprovisioned " + fmtTime(t.person.deprovisioned_at)) : null,
      t.devices.length ? t.devices.map((d) => el("div", { class: "card", "data-testid": "triage-device" },
        el("h2", {}, deviceLink(d.device_id, d.hostname), " ", badge(d.assurance)),
        d.sessions.length ? el("p", {}, "Sessions: ", d.sessions.map((s) => `${s.os_user} on ${s.terminal} since ${fmtTime(s.since)} (${s.attribution}, seq ${s.evidence_seq})`).join("; ")) : el("p", { class: "muted" }, "No session open then."),
        presenceTable(d.present, false),
        d.activity && d.activity.length ? [el("h3", {}, "AI in use then"), activityTable(d.activity, ["when", "account", "tool", "connectors", "prompts", "calls", "mcp"])] : null)) : el("p", { class: "muted" }, "No device had this person's session or connectors then."));
    return;
  }
  let key = null;
  if (/^(tool|extension|token|mcp):/.test(q)) key = q;
  else if (/^[0-9a-f]{32}$/.test(q)) key = "token:" + q;
  else if (/^[a-p]{32}$/.test(q)) key = "extension:" + q;
  if (key) {
    const c = await api("/api/v1/triage/connector/" + enc(key));
    put(out, el("h2", {}, connectorLink(c.key, c.display_name), " ", badge(c.status)), presenceTable(c.presence, true));
    return;
  }
  let id = q;
  const found = await api("/api/v1/views/devices?limit=20&q=" + enc(q));
  const exact = found.items.find((d) => d.device_id === q || d.hostname === q);
  if (exact) id = exact.device_id;
  else if (found.items.length === 1) id = found.items[0].device_id;
  else if (found.items.length > 1) {
    put(out, el("p", {}, "Several devices match:"), el("ul", {}, found.items.map((d) => el("li", {}, link("#/triage?" + new URLSearchParams({ q: d.device_id, at }), `${d.hostname} (${d.device_id})`)))));
    return;
  } else {
    put(out, el("p", { class: "muted" }, "Nothing matches: try an email, a device id or hostname, a token fingerprint or an extension id."));
    return;
  }
  const t = await api(`/api/v1/triage/device/${enc(id)}?at=${enc(iso)}`);
  put(out, el("h2", {}, deviceLink(id, t.device.hostname), ` at ${fmtTime(t.at)} `, badge(t.device.assurance)),
    el("p", {}, "Logged in: ", (t.sessions || []).map((s) => `${s.os_user} (${s.terminal})`).join(", ") || "nobody"),
    presenceTable(t.present, false),
    t.activity && t.activity.length ? [el("h3", {}, "AI in use then"), activityTable(t.activity, ["when", "person", "account", "tool", "connectors", "prompts", "calls", "mcp"])] : null);
}

// ---- recertification ------------------------------------------------------------------------

function progress(c) {
  const n = c.counts;
  return `${n.answered} of ${n.total} answered (${n.kept} kept, ${n.revoked} revoked` +
    (n.admin_queue ? `, ${n.admin_queue} waiting for admins` : "") + ")";
}

async function renderReviews() {
  const list = await api("/api/v1/reviews");
  const rows = list.slice().reverse().map((c) => el("tr", { "data-testid": "campaign-row" },
    el("td", {}, link("#/review/" + enc(c.id), c.id)),
    el("td", {}, c.scope), el("td", {}, c.rule), el("td", {}, fmtTime(c.due_at)),
    el("td", {}, progress(c)),
    el("td", {}, c.closed_at ? badge("closed", "approved") : badge("open", "pending")),
    el("td", { class: "opt" }, c.created_by)));
  show(el("h1", {}, "Access reviews"),
    el("p", { class: "muted" }, "Each connector's owner (or their manager once the owner has left) keeps or revokes it by the due date. Start one with ",
      el("code", {}, "sightline-server review start --scope all --due 14d"), "; reviewers get their links from the reminder outbox."),
    list.length
      ? scroll(el("table", { "data-testid": "campaigns-table" },
        el("thead", {}, el("tr", {}, ["Campaign", "Scope", "Rule", "Due", "Progress", "State"].map((h) => el("th", {}, h)), el("th", { class: "opt" }, "Started by"))),
        el("tbody", {}, rows)))
      : el("p", { class: "card empty", "data-testid": "empty-reviews" }, "No review campaigns yet."));
}

async function renderReview(id) {
  const c = await api("/api/v1/reviews/" + enc(id));
  const rows = (c.items || []).map((i) => el("tr", { "data-testid": "review-row" },
    el("td", {}, connectorLink(i.connector_key, i.display_name)),
    el("td", {}, i.kind),
    el("td", {}, i.reviewer ? link("#/person/" + enc(i.reviewer), i.reviewer_name || i.reviewer) : el("em", {}, "admins"), " (", i.why, ")"),
    el("td", {}, fmtTime(i.due_at)),
    el("td", {}, i.decision ? badge(i.decision === "keep" ? "kept" : "revoked", i.decision === "keep" ? "approved" : "unsanctioned") : badge("open", "pending"),
      i.keep_until ? " until " + fmtTime(i.keep_until) : ""),
    el("td", { class: "opt" }, i.reason || ""),
    el("td", { class: "opt" }, i.decided_by || "")));
  show(el("h1", {}, "Access review ", c.id),
    el("p", {}, `Scope ${c.scope}, unanswered items ${c.rule === "revoke" ? "are revoked" : "escalate"} at the due date (${fmtTime(c.due_at)}). ${progress(c)}.`),
    el("p", { class: "muted" }, "Signed report for auditors: ", el("code", {}, `sightline-server review report ${c.id} --out report.json`)),
    scroll(el("table", { "data-testid": "review-table" },
      el("thead", {}, el("tr", {}, ["Connector", "Kind", "Reviewer", "Due", "Answer"].map((h) => el("th", {}, h)), el("th", { class: "opt" }, "Reason"), el("th", { class: "opt" }, "By"))),
      el("tbody", {}, rows))));
}
