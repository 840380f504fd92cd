// The cell page: each measurement over the chosen span (plotly.js), its incidents shaded, its forecast after
// it with the breach limits. `el` comes from common.js.
"use strict";

const cell = JSON.parse(document.getElementById("cell-data").textContent);

function shapes(series) {
  const shaded = cell.incidents.map((i) => ({ type: "rect", xref: "x", yref: "paper", x0: new Date(i.opened_ms),
    x1: new Date(i.last_ms), y0: 0, y1: 1, fillcolor: "rgba(214,69,69,0.15)", line: { width: 0 } }));
  const end = series.forecast ? series.forecast.times_ms.at(-1) : cell.end_ms;
  const limits = series.limits.map((l) => ({ type: "line", xref: "x", x0: new Date(cell.start_ms),
    x1: new Date(end), y0: l.threshold, y1: l.threshold, line: { color: "#b00020", dash: "dot", width: 1 } }));
  return [...shaded, ...limits];
}

function draw() {
  const holder = document.getElementById("plots");
  cell.series.forEach((s, index) => {
    const div = el("div", { id: `plot-${index}`, class: "plot", "data-measurement": s.measurement });
    holder.append(div);
    const traces = [{ x: s.times_ms.map((ms) => new Date(ms)), y: s.values, name: s.measurement, mode: "lines",
      line: { color: "#1d4e89" } }];
    if (s.forecast) {
      traces.push({ x: s.forecast.times_ms.map((ms) => new Date(ms)), y: s.forecast.values, name: "forecast",
        mode: "lines", line: { color: "#e08a00", dash: "dot" } });
    }
    const limits = s.limits.map((l) => `${l.direction} ${l.threshold}`).join(", ");
    const layout = {
      title: { text: `${s.measurement}${s.unit ? ` (${s.unit})` : ""}${limits ? ` · limit: ${limits}` : ""}`,
        font: { size: 14 } },
      margin: { t: 30, r: 10, b: 40, l: 60 }, shapes: shapes(s), showlegend: Boolean(s.forecast),
      legend: { orientation: "h", y: -0.2 },
    };
    window.Plotly.newPlot(div, traces, layout, { displayModeBar: false, responsive: true });
  });
  if (!cell.series.length) holder.append(el("p", {}, "The history holds no value of this cell in this span."));
  holder.dataset.drawn = String(cell.series.length);
}

draw();
