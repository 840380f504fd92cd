// The incident page: each measurement against its normal band (plotly.js), the report fetched after the page
// is shown (a language model may take seconds), and the operator's actions (JSON POSTs, then a reload).
"use strict";

const plot = JSON.parse(document.getElementById("plot-data").textContent);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function drawPlots() {
  const holder = document.getElementById("plots");
  plot.series.forEach((s, index) => {
    const div = el("div", { id: `plot-${index}`, class: "plot", "data-measurement": s.measurement });
    holder.append(div);
    const x = s.times_ms.map((ms) => new Date(ms));
    const traces = [
      { x, y: s.low, name: "band low (5 %)", mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false },
      { x, y: s.high, name: "normal band (5-95 %)", mode: "lines", line: { width: 0 }, fill: "tonexty",
        fillcolor: "rgba(63,163,77,0.18)" },
      { x, y: s.level, name: "normal level", mode: "lines", line: { dash: "dash", color: "#3fa34d" } },
      { x, y: s.values, name: s.measurement, mode: "lines", line: { color: "#1d4e89" } },
    ];
    const layout = {
      title: { text: `${s.measurement}${s.unit ? ` (${s.unit})` : ""}`, font: { size: 14 } },
      margin: { t: 30, r: 10, b: 70, l: 60 },
      shapes: [{ type: "rect", xref: "x", yref: "paper", x0: new Date(plot.opened_ms), x1: new Date(plot.last_ms),
        y0: 0, y1: 1, fillcolor: "rgba(214,69,69,0.12)", line: { width: 0 } }],
      legend: { orientation: "h", y: -0.3 },
    };
    window.Plotly.newPlot(div, traces, layout, { displayModeBar: false, responsive: true });
  });
  if (!plot.series.length) holder.append(el("p", {}, "The history holds no value of this cell around the incident."));
  document.getElementById("plots").dataset.drawn = String(plot.series.length);
}

async function loadReport() {
  const section = document.getElementById("report");
  const status = document.getElementById("report-status");
  const answer = await fetch(section.dataset.url, { headers: { accept: "application/json" } });
  if (!answer.ok) {
    status.textContent = `No report: ${(await answer.json()).detail}`;
    return;
  }
  const report = await answer.json();
  const facts = report.facts;
  const summary = report.executive_summary;
  document.getElementById("summary").textContent = summary.text;
  document.getElementById("written-by").textContent = summary.written_by === "model"
    ? `written by a language model (${summary.model}), checked against the fact sheet`
    : `written by the template${summary.rejection ? ` (the model's was rejected: ${summary.rejection})` : ""}`;
  const cause = facts.root_cause;
  document.getElementById("root-cause").textContent = cause.confidence === null
    ? `${cause.kind}${cause.classifier ? ` (${cause.classifier})` : " (no classifier configured)"}`
    : `${cause.kind}, confidence ${(cause.confidence * 100).toFixed(0)} % (${cause.classifier})`;
  document.getElementById("actions").replaceChildren(...facts.actions.map((a) => el("li", {},
    el("b", {}, a.title), ` (confidence ${(a.confidence * 100).toFixed(0)} %): ${a.rationale} `,
    el("small", {}, `Control: ${a.oran_control}`))));
  const breaches = facts.forecasts ?? [];
  document.getElementById("breaches").replaceChildren(...(breaches.length ? breaches.map((b) => el("li", {},
    `${b.measurement} ${b.direction} ${b.threshold} (forecast ${b.predicted.toFixed(1)}) at ` +
    new Date(b.crosses_at_ms).toISOString())) : [el("li", {}, facts.forecasts === null ? "no forecasts" : "none")]));
  const alerts = facts.alerts;
  document.getElementById("alerts").replaceChildren(...(alerts ? alerts.notifications.map((n) => el("li", {},
    `${n.event}: ${n.state} after ${n.attempts} attempt(s) ${n.outcome}`)) : [el("li", {}, "none sent")]));
  status.hidden = true;
  document.getElementById("report-body").hidden = false;
}

async function act(path, body) {
  const base = document.querySelector(".actions").dataset.base;
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
  const answer = await fetch(`${base}/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json", "x-csrf-token": csrf },
    body: JSON.stringify(body),
  });
  if (answer.ok) {
    window.location.reload();
  } else {
    document.getElementById("action-error").textContent = (await answer.json()).detail ?? answer.statusText;
  }
}

if (document.querySelector(".actions")) {  // absent for a session that may read only
  document.getElementById("acknowledge").addEventListener("click", () => act("acknowledge", {}));
  document.getElementById("note-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act("notes", { text: document.getElementById("note").value });
  });
  document.getElementById("verdict-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const cause = document.getElementById("cause").value;
    act("verdict", { verdict: document.getElementById("verdict-choice").value, cause: cause || null });
  });
}

drawPlots();
loadReport();
