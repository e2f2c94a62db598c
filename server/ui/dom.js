// What the dashboard and the review page share: building DOM nodes, where data is only ever
// inserted as text (never as HTML), and showing the API's RFC 3339 instants. Loaded first
// (deferred scripts run in order), so its functions are there for the page's own script.
"use strict";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fmtTime(t) {
  return t ? t.replace("T", " ").replace("Z", " UTC") : "—";
}
