// The dashboard's charts (uPlot, vendored under static/vendor) and their live updates.
//
// Every <figure data-chart> holds its spec as JSON: {title, x_label, y_label, metrics, series:
// [{label, x, y}]}. Series of one chart may have different steps (loss every step, eval_loss every
// few hundred), so they are aligned on the union of their steps with gaps left as nulls.
// A run page's charts (<div id="run-charts" data-series-url data-events-url>) start empty: their
// stored points come from the series URL as JSON ({charts, last_sequence, points}), and then,
// when <div id="live" data-live="true"> says the run is not over, the server-sent events of the
// events URL from the next sequence: each `metrics` event ({step, values}) appends points to the
// charts that draw those metrics.
"use strict";

(function () {
  const charts = [];

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // Three significant digits, so that 0.0025 and 0.003 stay apart on a learning-rate axis.
  function tick(value) {
    if (value == null) return "";
    if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString();
    return String(Number(value.toPrecision(3)));
  }

  function aligned(series) {
    const steps = new Set();
    for (const s of series) for (const x of s.x) steps.add(x);
    const xs = Array.from(steps).sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const columns = series.map((s) => {
      const column = new Array(xs.length).fill(null);
      s.x.forEach((x, i) => { column[index.get(x)] = s.y[i]; });
      return column;
    });
    return [xs, ...columns];
  }

  function options(chart, width) {
    const muted = cssVar("--muted"), line = cssVar("--line");
    const axis = (label) => ({ label: label, stroke: muted, grid: { stroke: line, width: 1 },
      ticks: { stroke: line, width: 1 }, values: (u, splits) => splits.map(tick) });
    return {
      width: width,
      height: 280,
      scales: chart.spec.y_range
        ? { x: { time: false }, y: { range: chart.spec.y_range } }
        : { x: { time: false } },
      axes: [axis(chart.spec.x_label), axis(chart.spec.y_label)],
      series: [{ label: "step" }].concat(chart.spec.series.map((s, i) => ({
        label: s.label,
        stroke: cssVar("--series-" + (i % 6)),
        width: 1.5,
        spanGaps: true,
        points: { show: s.x.length < 60 },
      }))),
    };
  }

  function pointCount(chart) {
    return chart.spec.series.reduce((n, s) => n + s.x.length, 0);
  }

  function draw(chart) {
    chart.pending = false;
    const figure = chart.figure;
    const plot = figure.querySelector(".plot");
    figure.dataset.points = String(pointCount(chart));
    if (chart.spec.series.length === 0) {
      plot.innerHTML = '<p class="empty">No points yet.</p>';
      return;
    }
    const width = Math.max(300, plot.clientWidth || 500);
    const seriesCount = chart.spec.series.length;
    if (chart.plot && chart.seriesCount === seriesCount) {
      chart.plot.setData(aligned(chart.spec.series));
      return;
    }
    if (chart.plot) chart.plot.destroy();
    plot.innerHTML = "";
    chart.plot = new uPlot(options(chart, width), aligned(chart.spec.series), plot);
    chart.seriesCount = seriesCount;
  }

  function schedule(chart) {
    if (!chart.pending) {
      chart.pending = true;
      requestAnimationFrame(() => draw(chart));
    }
  }

  function append(step, values) {
    for (const chart of charts) {
      for (const [name, value] of Object.entries(values)) {
        if (!(chart.spec.metrics || []).includes(name)) continue;
        let series = chart.spec.series.find((s) => s.label === name);
        if (!series) {
          series = { label: name, x: [], y: [] };
          chart.spec.series.push(series);
        }
        series.x.push(step);
        series.y.push(value);
        schedule(chart);
      }
    }
  }

  function problem(before, text) {
    const banner = document.createElement("div");
    banner.className = "banner";
    banner.setAttribute("role", "alert");
    banner.textContent = text;
    before.before(banner);
  }

  async function loadSeries(container, live) {
    const response = await fetch(container.dataset.seriesUrl);
    const payload = await response.json();
    if (!response.ok) {
      problem(container, payload.message);
      return;
    }
    payload.charts.forEach((spec, i) => {
      const chart = charts.find((c) => c.figure.id === "chart-" + (i + 1));
      if (chart) {
        chart.spec = spec;
        draw(chart);
      }
    });
    document.getElementById("point-count").textContent = "(" + payload.points +
      " points stored; at most 2,000 per curve drawn)";
    container.dataset.loaded = "true";
    if (live && live.dataset.live === "true") {
      listen(live, container.dataset.eventsUrl + "?from=" + (payload.last_sequence + 1));
    }
  }

  function listen(live, url) {
    const status = live.querySelector(".status");
    let received = 0;
    const source = new EventSource(url);
    source.addEventListener("metrics", (message) => {
      const event = JSON.parse(message.data);
      received += 1;
      live.dataset.received = String(received);
      status.textContent = "Live: " + received + " new events, last at step " + event.step + ".";
      append(event.step, event.values);
    });
    source.addEventListener("end", (message) => {
      const state = JSON.parse(message.data).state;
      status.textContent = "The run has ended (" + state + ").";
      const shown = document.getElementById("run-state");
      if (shown) {
        shown.textContent = state;
        shown.className = "state state-" + state;
      }
      live.dataset.ended = "true";
      source.close();
    });
    source.addEventListener("problem", (message) => {
      problem(live, JSON.parse(message.data).message);
      source.close();
    });
  }

  // The compare page: every chosen run's stored curves, one chart per metric, a series per run.
  async function loadCompare(container) {
    const runs = JSON.parse(container.dataset.runs);
    const payloads = await Promise.all(runs.map(async (run) => {
      const response = await fetch("/runs/" + encodeURIComponent(run) + "/series");
      const payload = await response.json();
      if (!response.ok) problem(container, run + ": " + payload.message);
      return response.ok ? payload : null;
    }));
    const specs = [];
    (payloads.find((p) => p) || { charts: [] }).charts.forEach((template, i) => {
      for (const metric of template.metrics) {
        const series = [];
        payloads.forEach((payload, r) => {
          const found = payload && payload.charts[i].series.find((s) => s.label === metric);
          if (found) series.push({ label: runs[r], x: found.x, y: found.y });
        });
        if (series.length) {
          specs.push({ title: template.title + ": " + metric, x_label: template.x_label,
            y_label: template.y_label, y_range: template.y_range, metrics: [], series: series });
        }
      }
    });
    specs.forEach((spec, i) => {
      const figure = document.createElement("figure");
      figure.className = "chart";
      figure.id = "compare-" + (i + 1);
      const caption = document.createElement("figcaption");
      caption.textContent = spec.title;
      const plot = document.createElement("div");
      plot.className = "plot";
      figure.append(caption, plot);
      container.append(figure);
      const chart = { figure: figure, spec: spec, plot: null, pending: false };
      charts.push(chart);
      draw(chart);
    });
    document.getElementById("compare-status").textContent = specs.length
      ? runs.length + " runs, " + specs.length + " metrics."
      : "The chosen runs have no metrics yet.";
    container.dataset.loaded = "true";
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const figure of document.querySelectorAll("figure[data-chart]")) {
      const spec = JSON.parse(figure.querySelector("script[type='application/json']").textContent);
      const chart = { figure: figure, spec: spec, plot: null, pending: false };
      charts.push(chart);
      draw(chart);
    }
    window.addEventListener("resize", () => {
      for (const chart of charts) {
        if (chart.plot) chart.plot.setSize({ width: chart.figure.querySelector(".plot").clientWidth,
          height: 280 });
      }
    });
    const runCharts = document.getElementById("run-charts");
    if (runCharts) loadSeries(runCharts, document.getElementById("live"));
    const compare = document.getElementById("compare-charts");
    if (compare) loadCompare(compare);
    const refresh = document.querySelector("[data-refresh]");
    if (refresh) {
      // The jobs page re-reads its tables from the training service every few seconds.
      setInterval(async () => {
        const response = await fetch(location.href, { headers: { "X-Fragment": "1" } });
        if (response.ok) refresh.innerHTML = await response.text();
      }, Number(refresh.dataset.refresh) * 1000);
    }
  });
})();
