// Sightline access review: the page a reviewer's link opens (/ui/review/#t=TOKEN). The token
// sits in the URL fragment, which the browser sends neither to the server nor in a Referer;
// the page keeps it for this tab only (sessionStorage), takes it out of the address bar, and
// hands it to the API as a bearer token, which opens this reviewer's items and nothing else.
// Data is only ever inserted as text, never as HTML.
"use strict";

const main = document.getElementById("main");
const KEY = "sightline_review_token";

function token() {
  const m = location.hash.match(/^#t=([A-Za-z0-9_-]+)$/);
  if (m) {
    sessionStorage.setItem(KEY, m[1]);
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(KEY);
}

async function call(path, t, body) {
  const o = { credentials: "omit", headers: { Authorization: "Bearer " + t } };
  if (body) {
    o.method = "POST";
    o.headers["Content-Type"] = "application/json";
    o.body = JSON.stringify(body);
  }
  const r = await fetch(path, o);
  const text = await r.text();
  const out = text ? JSON.parse(text) : null;
  if (!r.ok) {
    const e = new Error((out && out.error) || r.statusText);
    e.status = r.status;
    throw e;
  }
  return out;
}

function answered(i) {
  const until = i.keep_until ? " until " + fmtTime(i.keep_until) : "";
  const verb = i.decision === "keep" ? "Kept" + until : "Revoked";
  return el("p", { class: "answer " + i.decision, "data-testid": "answer" },
    el("strong", {}, verb), " — ", i.reason || "", el("span", { class: "muted" }, " (" + fmtTime(i.decided_at) + ")"));
}

function itemCard(t, campaign, it) {
  const c = it.connector;
  const i = it.item;
  const owner = c.owner ? `${c.owner.display_name || c.owner.user_name} (${c.owner.source})` : "nobody known";
  const devices = (c.devices || []).map((d) => `${d.hostname || d.device_id}${d.user ? " as " + d.user : ""}`).join(", ") || "—";
  const id = c.authorized_by;
  const facts = el("dl", { class: "kv" },
    el("dt", {}, "Kind"), el("dd", {}, c.kind),
    el("dt", {}, "Owner"), el("dd", {}, owner),
    el("dt", {}, "Devices"), el("dd", { "data-testid": "devices" }, devices),
    el("dt", {}, "Last seen"), el("dd", {}, fmtTime(c.last_seen)),
    id ? [el("dt", {}, "Signed in as"), el("dd", {}, id.account + (id.org ? " (" + id.org + ")" : "") + (id.class ? " — " + id.class : ""))] : null,
    el("dt", {}, "Why you"), el("dd", {}, i.why === "owner" ? "you own it" : i.why === "manager" ? "its owner has left; you are their manager" : "escalated to you"),
    el("dt", {}, "Key"), el("dd", { class: "mono" }, c.key));
  const card = el("section", { class: "card review-item", "data-testid": "review-item", "data-key": c.key },
    el("h2", {}, c.display_name, " ", el("span", { class: "badge " + c.status }, c.status)), facts);
  if (i.decision) {
    card.append(answered(i));
    return card;
  }
  const reason = el("input", { type: "text", name: "reason", placeholder: "Why (required)", "aria-label": "Reason", required: true, maxlength: 500 });
  const period = el("select", { name: "keep_for", "aria-label": "Keep for" },
    el("option", { value: "30d" }, "for 30 days"),
    el("option", { value: "90d" }, "for 90 days"),
    el("option", { value: "" }, "with no end date"));
  const error = el("p", { class: "error", hidden: true });
  const decide = async (decision) => {
    error.hidden = true;
    if (!reason.value.trim()) {
      error.textContent = "Say why: the review is an audit record.";
      error.hidden = false;
      return reason.focus();
    }
    const body = { decision, reason: reason.value.trim() };
    if (decision === "keep" && period.value) body.keep_for = period.value;
    for (const b of card.querySelectorAll("button")) b.disabled = true;
    try {
      const done = await call(`/api/v1/reviews/${encodeURIComponent(campaign)}/items/${encodeURIComponent(c.key)}`, t, body);
      form.replaceWith(answered(done));
      // The status shown was read before this answer.
      const stale = card.querySelector("h2 .badge");
      if (stale) stale.remove();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      for (const b of card.querySelectorAll("button")) b.disabled = false;
    }
  };
  const form = el("div", { class: "actions decide" },
    reason, period,
    el("button", { type: "button", class: "primary", "data-testid": "keep", onclick: () => decide("keep") }, "Keep"),
    el("button", { type: "button", class: "danger", "data-testid": "revoke", onclick: () => decide("revoke") }, "Revoke"),
    error);
  card.append(form);
  return card;
}

async function render() {
  const t = token();
  if (!t) {
    main.replaceChildren(el("p", { class: "error" }, "This page opens from the link in your review e-mail."));
    return;
  }
  let page;
  try {
    page = await call("/api/v1/review/me", t);
  } catch (e) {
    const why = e.status === 401 ? "This review link has expired or is not valid. Ask your Sightline administrators for a new one." : e.message;
    main.replaceChildren(el("p", { class: "error", "data-testid": "error" }, why));
    return;
  }
  const c = page.campaign;
  const then = c.rule === "revoke" ? "revoked" : "passed to your manager";
  main.replaceChildren(
    el("h1", {}, "Access review ", c.id),
    el("p", {}, "Hello ", page.reviewer_name || page.reviewer, ". For each AI connector below, keep it if it is still needed, or revoke it. ",
      "Due ", el("strong", {}, fmtTime(c.due_at)), "; anything unanswered then will be " + then + "."),
    ...(page.items.length ? page.items.map((it) => itemCard(t, c.id, it)) : [el("p", { class: "muted" }, "Nothing is waiting for you in this review.")]));
}

render();
