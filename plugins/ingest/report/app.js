// The report's charts. Names in the data come from clients (models, features, groups), so
// every string goes into the page as text (textContent), and tooltips use ECharts' richText
// mode, which draws them on the canvas instead of parsing them as HTML.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var root = document.getElementById("report");
  var TIP = { trigger: "axis", renderMode: "richText", confine: true };
  var LABELS = { accuracy: "Accuracy", f1: "F1", precision: "Precision", recall: "Recall",
    roc_auc: "ROC AUC", pr_auc: "PR AUC", mae: "MAE", rmse: "RMSE", r2: "R²" };

  function el(tag, parent, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    if (parent) parent.appendChild(node);
    return node;
  }

  function chart(parent, option, cls) {
    var box = el("div", parent, null, "chart " + (cls || ""));
    var instance = echarts.init(box, null, { renderer: "canvas" });
    instance.setOption(Object.assign({ animation: false, tooltip: TIP,
      grid: { left: 56, right: 24, top: 40, bottom: 40 } }, option));
    window.__report.charts += 1;
    window.addEventListener("resize", function () { instance.resize(); });
    return instance;
  }

  function pairs(times, values) {
    return times.map(function (t, i) { return [t, values[i]]; });
  }

  function metricChart(parent, s, name, m) {
    var hasEstimate = m.estimated.some(function (v) { return v !== null; });
    var low = m.estimated.map(function (v, i) { return v === null || m.error[i] === null ? null : v - m.error[i]; });
    var width = m.error.map(function (e) { return e === null ? null : 2 * e; });
    var series = [{ name: "realized", type: "line", showSymbol: false, data: pairs(s.t, m.realized) }];
    if (hasEstimate) {
      series.push({ name: "estimated", type: "line", showSymbol: false, lineStyle: { type: "dashed" },
        data: pairs(s.t, m.estimated) });
      // The error band: an invisible lower edge with the band's width stacked on it.
      series.push({ name: "band low", type: "line", stack: "band", symbol: "none", lineStyle: { opacity: 0 },
        data: pairs(s.t, low), tooltip: { show: false } });
      series.push({ name: "estimate ± error", type: "line", stack: "band", symbol: "none",
        lineStyle: { opacity: 0 }, areaStyle: { opacity: 0.25 }, data: pairs(s.t, width) });
    }
    chart(parent, { title: { text: LABELS[name] || name, textStyle: { fontSize: 13 } },
      legend: { bottom: 0, data: ["realized", "estimated", "estimate ± error"] },
      grid: { left: 56, right: 24, top: 36, bottom: 56 },
      xAxis: { type: "time" }, yAxis: { type: "value", scale: true }, series: series });
  }

  function gapChart(parent, s) {
    var series = Object.keys(s.metrics).filter(function (k) {
      return s.metrics[k].gap.some(function (v) { return v !== null; });
    }).map(function (k) {
      return { name: LABELS[k] || k, type: "line", showSymbol: false, data: pairs(s.t, s.metrics[k].gap) };
    });
    if (!series.length) return;
    el("h3", parent, "Concept drift: realized minus estimated");
    el("p", parent, "Beyond the estimate's error band, the relation between inputs and labels has changed.", "note");
    chart(parent, { legend: { top: 4 }, xAxis: { type: "time" }, yAxis: { type: "value" },
      series: series }, "wide");
  }

  function heatmap(parent, s) {
    var d = s.drift;
    if (!d.features.length) return;
    el("h3", parent, "Drift per feature over the windows");
    el("p", parent, "Each cell: the feature's effect over its threshold at that window's size (1 = threshold).", "note");
    var cells = [], top = 1;
    d.ratio.forEach(function (row, f) {
      row.forEach(function (v, w) { if (v !== null) { cells.push([w, f, v]); top = Math.max(top, v); } });
    });
    var labels = s.t.map(function (t) { return new Date(t).toISOString().slice(0, 16).replace("T", " "); });
    var height = Math.max(260, 40 + 16 * d.features.length);
    var box = chart(parent, { tooltip: { renderMode: "richText", position: "top" },
      grid: { left: 140, right: 80, top: 20, bottom: 60 },
      xAxis: { type: "category", data: labels },
      yAxis: { type: "category", data: d.features, inverse: true },  // the worst feature on top
      visualMap: { min: 0, max: Math.min(top, 5), calculable: true, right: 0, top: "middle",
        inRange: { color: ["#f7fbff", "#fdd49e", "#d7301f"] } },
      series: [{ name: "effect / threshold", type: "heatmap", data: cells, progressive: 5000 }] }, "wide");
    box.getDom().style.height = height + "px";
    box.resize();
    d.distributions.forEach(function (dist) { distribution(parent, dist); });
  }

  function distribution(parent, dist) {
    var categories = dist.categories || (dist.edges || []).slice(0, -1).map(function (e) { return Number(e).toPrecision(3); });
    chart(parent, { title: { text: dist.feature + ": reference against current", textStyle: { fontSize: 13 } },
      legend: { bottom: 0 }, grid: { left: 56, right: 24, top: 36, bottom: 56 },
      xAxis: { type: "category", data: categories },
      yAxis: { type: "value" }, series: [
        { name: "reference", type: "bar", data: dist.reference },
        { name: "current", type: "bar", data: dist.current }] });
  }

  function table(parent, head, rows) {
    var t = el("table", parent);
    var tr = el("tr", t);
    head.forEach(function (h) { el("th", tr, h); });
    rows.forEach(function (row) {
      var r = el("tr", t);
      row.forEach(function (cell) { el("td", r, cell === null || cell === undefined ? "—" : cell); });
    });
  }

  function events(parent, s) {
    if (!s.events.length) return;
    el("h3", parent, "Events on the timeline");
    var kinds = [];
    s.events.forEach(function (e) { if (kinds.indexOf(e.kind) < 0) kinds.push(e.kind); });
    var colors = { info: "#0969da", warning: "#bf8700", critical: "#cf222e" };
    chart(parent, { grid: { left: 140, right: 24, top: 20, bottom: 40 },
      tooltip: { renderMode: "richText", trigger: "item" },
      xAxis: { type: "time", min: s.t[0], max: s.t[s.t.length - 1] },
      yAxis: { type: "category", data: kinds },
      series: [{ type: "scatter", symbolSize: 12, data: s.events.map(function (e) {
        return { value: [e.t, e.kind], name: e.detail, itemStyle: { color: colors[e.severity] || "#57606a" } };
      }) }] }, "wide");
    table(parent, ["time", "kind", "severity", "detail"], s.events.slice(0, 500).map(function (e) {
      return [e.t ? new Date(e.t).toISOString() : null, e.kind, e.severity, e.detail];
    }));
  }

  function quality(parent, s) {
    if (!s.quality.length) return;
    el("h3", parent, "Data quality (share of rows)");
    table(parent, ["feature", "issue", "last window", "worst window"], s.quality.slice(0, 200).map(function (q) {
      return [q.feature, q.issue, q.last, q.max];
    }));
  }

  function fairness(parent, s) {
    if (!s.fairness) return;
    el("h3", parent, "Fairness across groups (window ending " + s.fairness.end + ")");
    var keys = ["samples", "selection_rate", "tpr", "fpr", "f1"];
    table(parent, ["group"].concat(keys), s.fairness.groups.map(function (g) {
      return [g.group].concat(keys.map(function (k) { return g[k]; }));
    }));
    var summary = Object.keys(s.fairness.summary).map(function (k) { return k + ": " + s.fairness.summary[k]; });
    if (summary.length) el("p", parent, summary.join(" · "), "note");
  }

  function stream(s) {
    var section = el("section", root);
    el("h2", section, s.model + " — version " + (s.version || "(none)") + " — " + s.window + " windows");
    var labelled = s.n_labeled.reduce(function (a, b) { return a + (b || 0); }, 0);
    var total = s.n.reduce(function (a, b) { return a + (b || 0); }, 0);
    el("p", section, s.t.length + " windows, " + total + " predictions, " + labelled + " with a label, " +
      s.events_total + " events" + (s.events_total > s.events.length ?
        " (the latest " + s.events.length + " shown)" : "") + ".", "note");
    var names = Object.keys(s.metrics);
    if (names.length) {
      el("h3", section, "Quality: realized against estimated (band: the estimate's error)");
      var grid = el("div", section, null, "grid");
      names.forEach(function (name) { metricChart(grid, s, name, s.metrics[name]); });
    } else {
      el("p", section, "No quality metrics in these windows (no labels, or the quality monitor was off).", "note bad");
    }
    gapChart(section, s);
    heatmap(section, s);
    quality(section, s);
    fairness(section, s);
    events(section, s);
  }

  try {
    if (!data.streams.length) el("p", root, "The replay produced no windows.", "bad");
    data.streams.forEach(stream);
    el("h2", root, "Configuration");
    el("pre", root, data.config || "(built-in defaults)");
  } catch (err) {
    window.__report.errors.push(String(err && err.stack || err));
    el("pre", root, "The report failed to draw: " + err, "bad");
  }
  document.body.setAttribute("data-charts", String(window.__report.charts));
  document.body.setAttribute("data-errors", JSON.stringify(window.__report.errors));
})();
