// Activity Explorer: charts (uPlot, vendored) and the Live page. No inline script: every value
// from the store reaches the DOM as text (textContent), never as HTML.
(function () {
  "use strict";
  const PALETTE = ["#4f46e5", "#12b76a", "#f79009", "#f04438", "#06aed4", "#7a5af8", "#98a2b3", "#ee46bc"];

  function format(unit, value) {
    if (value == null) return "-";
    if (unit === "usd") return "$" + (Math.abs(value) >= 1 ? value.toFixed(2) : String(Number(value.toPrecision(2))));
    if (unit === "s") return value < 1 ? (value * 1000).toFixed(0) + " ms" : value.toFixed(2) + " s";
    return Math.abs(value) >= 1000 ? (value / 1000).toFixed(1) + "k" : String(Math.round(value * 100) / 100);
  }

  async function drawCharts() {
    if (typeof uPlot === "undefined") return;
    const source = document.getElementById("chart-data");
    const remote = document.querySelector("[data-series]");
    let data;
    if (source) {
      data = JSON.parse(source.textContent);
    } else if (remote) {  // the overview's charts come after its totals
      remote.classList.add("loading");
      try {
        const answer = await fetch(remote.dataset.series, { credentials: "same-origin" });
        if (!answer.ok) throw new Error(String(answer.status));
        data = await answer.json();
      } catch (e) {
        data = { times: [], charts: {} };
      }
      remote.classList.remove("loading");
      remote.dataset.ready = "1";
    } else {
      return;
    }
    const plots = [];
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      const lines = (data.charts || {})[el.dataset.chart];
      const names = lines ? Object.keys(lines) : [];
      if (!names.length || !data.times.length) {
        const empty = document.createElement("div");
        empty.className = "nodata";
        empty.textContent = "No data in this range";
        el.appendChild(empty);
        return;
      }
      const unit = el.dataset.unit;
      const few = data.times.length < 24;
      const step = data.step || 60;
      const options = {
        width: Math.max(el.clientWidth, 300),
        height: 220,
        cursor: { points: { size: 6 } },
        // the buckets' span plus half a bucket each side: a single bucket is not stretched over years
        scales: { x: { time: true, range: [data.times[0] - step / 2, data.times[data.times.length - 1] + step / 2] } },
        axes: [{ stroke: "#667085", grid: { stroke: "#eef0f3" } },
               { stroke: "#667085", grid: { stroke: "#eef0f3" }, size: 78,
                 values: function (u, ticks) { return ticks.map(function (t) { return format(unit, t); }); } }],
        series: [{}].concat(names.map(function (name, i) {
          const color = PALETTE[i % PALETTE.length];
          return { label: name, stroke: color, width: 2, spanGaps: false,
                   points: { show: few, size: 7, fill: color },
                   value: function (u, v) { return format(unit, v); } };
        })),
      };
      plots.push([el, new uPlot(options, [data.times].concat(names.map(function (n) { return lines[n]; })), el)]);
    });
    window.addEventListener("resize", function () {
      plots.forEach(function (p) { p[1].setSize({ width: Math.max(p[0].clientWidth, 300), height: 220 }); });
    });
  }

  function autosubmit() {
    document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });
  }

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function money(v) { return v == null ? "-" : "$" + Number(v).toFixed(6); }
  function secs(v) { return v == null ? "-" : (v < 1 ? Math.round(v * 1000) + " ms" : Number(v).toFixed(3) + " s"); }
  function count(v) { return v == null ? "-" : Number(v).toLocaleString("en-US"); }

  function liveRow(base, row) {
    const tr = document.createElement("tr");
    tr.className = "fresh";
    tr.dataset.id = String(row.id);
    const time = cell("", "nowrap");
    const a = document.createElement("a");
    a.href = base + "/generations/" + encodeURIComponent(String(Number(row.id)));
    a.textContent = row.time;
    time.appendChild(a);
    tr.appendChild(time);
    tr.appendChild(cell((row.model || "-") + (row.stream ? " (stream)" : ""), "model"));
    tr.appendChild(cell(row.provider || "-"));
    tr.appendChild(cell(row.user_id == null ? "-" : row.user_id));
    tr.appendChild(cell(row.session_id == null ? "-" : row.session_id, "clip"));
    tr.appendChild(cell(row.route || "-", "clip"));
    const status = cell("");
    const badge = document.createElement("span");
    badge.className = row.status === "error" ? "badge err" : "badge ok";
    badge.textContent = row.status === "error" ? (row.error_type || "error") : "ok";
    status.appendChild(badge);
    tr.appendChild(status);
    tr.appendChild(cell(count(row.input_tokens), "num"));
    tr.appendChild(cell(count(row.output_tokens), "num"));
    tr.appendChild(cell(money(row.cost_usd), "num"));
    tr.appendChild(cell(secs(row.duration_s), "num"));
    tr.appendChild(cell(secs(row.ttfc_s), "num"));
    return tr;
  }

  function live() {
    const root = document.getElementById("live");
    if (!root) return;
    const base = document.body.dataset.base || "";
    const body = root.querySelector("tbody");
    const state = document.getElementById("live-state");
    let after = Number(root.dataset.after) || 0;
    async function poll() {
      try {
        const answer = await fetch(root.dataset.source + "?after=" + after, { credentials: "same-origin" });
        if (!answer.ok) throw new Error(String(answer.status));
        const rows = (await answer.json()).rows;
        if (rows.length) {
          const empty = body.querySelector("td.empty");
          if (empty) empty.parentNode.remove();
          rows.forEach(function (row) { body.insertBefore(liveRow(base, row), body.firstChild); after = Math.max(after, row.id); });
          while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
        }
        state.textContent = "watching";
        state.classList.remove("stale");
      } catch (e) {
        state.textContent = "cannot reach the Explorer";
        state.classList.add("stale");
      }
      setTimeout(poll, 2000);
    }
    setTimeout(poll, 2000);
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(); autosubmit(); live(); });
})();
