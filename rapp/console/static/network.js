// The network view: renders the network JSON (fetched once the page has painted, then polled) with DOM calls only (no HTML
// strings, so every name stays text; `el`, `utc` and `send` come from common.js), and puts or lifts
// maintenance silences.
"use strict";

const source = document.getElementById("network-data");
const incidentUrl = source.dataset.incidentUrl;

const silencesUrl = source.dataset.silencesUrl;
const cellUrl = source.dataset.cellUrl;

function age(seconds) {
  if (seconds === null) return "unknown";
  const hours = seconds / 3600;
  return hours >= 48 ? `${(hours / 24).toFixed(1)} days` : `${hours.toFixed(1)} h`;
}

const STATUSES = ["warming_up", "normal", "anomalous", "silenced"];

function renderCounts(counts) {
  const tiles = STATUSES.map((status) => [status, counts[status] ?? 0]).map(([status, n]) =>
    el("div", { class: "tile", "data-status": status }, el("b", {}, String(n)), status.replace("_", " ")));
  document.getElementById("counts").replaceChildren(...tiles);
}

function renderOpen(open) {
  const kinds = Object.entries(open.by_kind).map(([kind, n]) => `${kind}: ${n}`).join(", ");
  document.getElementById("open-kinds").textContent = `${open.total} open` + (kinds ? ` (${kinds})` : "");
  const rows = open.incidents.map((i) => el("tr", { "data-incident": i.incident_id },
    el("td", {}, el("a", { href: `${incidentUrl}/${encodeURIComponent(i.incident_id)}` }, i.cell_id)),
    el("td", {}, i.node_id), el("td", {}, i.kind), el("td", {}, utc(i.opened_ms)),
    el("td", {}, i.peak_score === null ? "" : i.peak_score.toFixed(1)),
    el("td", {}, i.operator.review.replace("_", " "))));
  document.querySelector("#open-incidents tbody").replaceChildren(...rows);
}

function renderHealth(model, nearRt) {
  const items = [
    ["Model scoring", model.version ?? "none yet"],
    ["Trained", model.created ? `${model.created} (${age(model.age_s)} ago)` : "unknown"],
    ["A1 endpoint", `${nearRt.available ? "answers" : "does not answer"} (${nearRt.a1})`],
    ["A1 sync", nearRt.sync_ok ? "every managed policy in place" : "failing"],
  ];
  if (nearRt.xapp) {
    const problems = nearRt.xapp.problems.length ? `: ${nearRt.xapp.problems.join("; ")}` : "";
    items.push(["xApp", `${nearRt.xapp.status}${problems}`]);
  }
  document.getElementById("health").replaceChildren(
    ...items.flatMap(([term, text]) => [el("dt", {}, term), el("dd", {}, text)]));
}

function renderSilences(silences) {
  const canAct = document.getElementById("silence-form") !== null;
  const rows = silences.map((s) => el("tr", { "data-silence": s.policy_id },
    el("td", {}, s.scope), el("td", {}, s.target), el("td", {}, utc(s.expires_ms)), el("td", {}, s.by),
    el("td", {}, ...(canAct ? [el("button", { type: "button", class: "lift", "data-id": s.policy_id }, "Lift")] : []))));
  document.querySelector("#silences tbody").replaceChildren(...rows);
  document.getElementById("no-silences").hidden = silences.length > 0;
  for (const button of document.querySelectorAll("#silences .lift")) {
    button.addEventListener("click", () => change("DELETE", `${silencesUrl}/${encodeURIComponent(button.dataset.id)}`));
  }
}

function silencedUntil(silences, scope, target) {
  const found = silences.find((s) => s.scope === scope && s.target === target);
  return found ? ` (silenced until ${utc(found.expires_ms)})` : "";
}

function renderTargets(nodes) {  // the silence form's suggestions: the nodes
  const list = document.getElementById("silence-targets");
  if (list.options.length !== nodes.length) {
    list.replaceChildren(...nodes.map((node) => el("option", { value: node.node_id })));
  }
}

function renderNodes(nodes, silences) {
  const sections = nodes.map((node) => el("div", { class: "node", "data-node": node.node_id },
    el("h3", {}, node.node_id, el("small", { class: "silenced-until" }, silencedUntil(silences, "node", node.node_id))),
    ...node.cells.map((cell) => {
      const title = `${cell.cell_id}: ${cell.status.replace("_", " ")}${silencedUntil(silences, "cell", cell.cell_id)}`;
      const attrs = { class: `cell ${cell.status}`, title, "data-cell": cell.cell_id };
      const href = cell.incident_id ? `${incidentUrl}/${encodeURIComponent(cell.incident_id)}`
        : `${cellUrl}/${encodeURIComponent(cell.cell_id)}`;  // an open incident first, else the cell's page
      return el("a", { ...attrs, href });
    })));
  document.getElementById("nodes").replaceChildren(...sections);
}

function renderRate(rate) {
  const x = rate.hour_ms.map((ms) => new Date(ms));
  window.Plotly.react("alarm-rate", [{ type: "bar", x, y: rate.opened, name: "opened" }], {
    margin: { t: 10, r: 10, b: 40, l: 40 }, yaxis: { rangemode: "tozero", dtick: 1 },
  }, { displayModeBar: false, responsive: true });
}

function render(view) {
  document.getElementById("as-of").textContent = `as of ${utc(view.now_ms)}`;
  renderCounts(view.counts);
  renderOpen(view.open_incidents);
  renderHealth(view.model, view.near_rt);
  renderNodes(view.cells, view.silences);
  renderSilences(view.silences);
  renderTargets(view.cells);
  document.getElementById("loading").hidden = true;
  renderRate(view.alarm_rate);
  document.body.dataset.renderedAt = String(Date.now());
}

async function poll() {
  try {
    await refresh();
  } finally {
    setTimeout(poll, Number(source.dataset.refreshMs));
  }
}

async function refresh() {
  const answer = await fetch(source.dataset.url, { headers: { accept: "application/json" } });
  if (answer.ok) render(await answer.json());
}

async function change(method, url, body) {
  const [ok, answer] = await send(method, url, body);
  document.getElementById("silence-error").textContent = ok ? "" : answer?.detail ?? "refused";
  if (ok) await refresh();
}

const form = document.getElementById("silence-form");
if (form) {  // absent for a session that may read only
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    change("POST", silencesUrl, { scope: form.elements.scope.value, target: form.elements.target.value.trim(),
                                  minutes: Number(form.elements.minutes.value) });
  });
}

poll();
