/**
 * Traffic charts on the model page, drawn with uPlot (bundled, never from a CDN).
 *
 * The server renders the last 60 minutes as JSON (`<script id=... type=application/json>`,
 * named by `[data-charts]`) and one empty `[data-chart="requests|error_rate|latency"]`
 * box per chart with `data-series` = the index of its version in the JSON. Charts are
 * redrawn whenever the "metrics" fragment is swapped in, and follow their box's width.
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

interface VersionSeries {
  number: number | null;
  label: string;
  requests: number[];
  errors: number[];
  refused: number[];
  error_rate: (number | null)[];
  refused_rate: (number | null)[];
  p50: (number | null)[];
  p95: (number | null)[];
  p99: (number | null)[];
}

interface Metrics {
  minutes: number[];
  versions: VersionSeries[];
}

const HEIGHT = 150;
const COLORS = {
  requests: "#4f46e5", errors: "#d92d20", refused: "#f79009", p50: "#4f46e5", p95: "#f79009", p99: "#d92d20",
};
const FONT = '11px ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

let plots: { plot: uPlot; box: HTMLElement }[] = [];
let observer: ResizeObserver | undefined;

function clock(seconds: number): string {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

function axes(unit: string): uPlot.Axis[] {
  const common = { font: FONT, stroke: "#667085", grid: { stroke: "#eef0f3", width: 1 }, ticks: { show: false } };
  return [
    { ...common, space: 70, values: (_u, splits) => splits.map(clock) },
    { ...common, size: 44, values: (_u, splits) => splits.map((v) => (v == null ? "" : `${fmt(v)}${unit}`)) },
  ];
}

function fmt(value: number): string {
  if (value >= 1000) return `${(value / 1000).toFixed(value >= 10_000 ? 0 : 1)}k`;
  return Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 1 : 0);
}

function line(label: string, stroke: string, unit: string): uPlot.Series {
  return {
    label, stroke, width: 1.75, spanGaps: false,
    points: { show: true, size: 4, fill: stroke },
    value: (_u, v) => (v == null ? "–" : `${v.toFixed(1)} ${unit}`),
  };
}

function optionsFor(kind: string, width: number): uPlot.Options {
  const x: uPlot.Scale = { time: true, range: (_u, min, max) => [min - 30, max + 30] };
  const base = {
    width, height: HEIGHT, padding: [8, 8, 0, 0] as uPlot.Padding,
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    // Every chart's legend names its lines and, under the cursor, their figures (otherwise the last minute's).
    legend: { show: kind !== "requests", live: true },
  };
  if (kind === "requests") {
    return {
      ...base,
      scales: { x, y: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil(max * 1.15))] } },
      axes: axes(""),
      series: [{}, {
        label: "requests", stroke: COLORS.requests, fill: "rgba(79, 70, 229, 0.22)", width: 1,
        paths: uPlot.paths.bars!({ size: [0.7, 14] }), points: { show: false },
      }],
    };
  }
  if (kind === "error_rate") {
    return {
      ...base,
      scales: { x, y: { range: (_u, _min, max) => [0, Math.max(5, Math.ceil((max ?? 0) * 1.15))] } },
      axes: axes("%"),
      series: [{}, line("4xx", COLORS.refused, "%"), line("5xx", COLORS.errors, "%")],
    };
  }
  return {
    ...base,
    scales: { x, y: { range: (_u, _min, max) => [0, Math.max(1, (max ?? 0) * 1.15)] } },
    axes: axes(""),
    series: [{}, line("p50", COLORS.p50, "ms"), line("p95", COLORS.p95, "ms"), line("p99", COLORS.p99, "ms")],
  };
}

function dataFor(kind: string, metrics: Metrics, series: VersionSeries): uPlot.AlignedData {
  const x = metrics.minutes;
  if (kind === "requests") return [x, series.requests];
  if (kind === "error_rate") return [x, series.refused_rate, series.error_rate];
  return [x, series.p50, series.p95, series.p99];
}

function clear(): void {
  plots.forEach(({ plot }) => plot.destroy());
  plots = [];
  observer?.disconnect();
}

export function drawCharts(root: ParentNode = document): void {
  clear();
  const container = root.querySelector<HTMLElement>("[data-charts]");
  if (!container) return;
  const source = document.getElementById(container.dataset.charts ?? "");
  if (!source?.textContent) return;
  const metrics = JSON.parse(source.textContent) as Metrics;
  container.querySelectorAll<HTMLElement>("[data-chart]").forEach((box) => {
    const series = metrics.versions[Number(box.dataset.series)];
    const kind = box.dataset.chart ?? "requests";
    if (!series) return;
    const width = Math.max(box.clientWidth, 160);
    plots.push({ plot: new uPlot(optionsFor(kind, width), dataFor(kind, metrics, series), box), box });
  });
  observer = new ResizeObserver(() => {
    plots.forEach(({ plot, box }) => {
      const width = Math.max(box.clientWidth, 160);
      if (Math.abs(width - plot.width) > 2) plot.setSize({ width, height: HEIGHT });
    });
  });
  plots.forEach(({ box }) => observer?.observe(box));
}

export function initCharts(): void {
  if (!document.querySelector("[data-charts]") && !document.querySelector('[data-fragment="metrics"]')) return;
  drawCharts();
  document.addEventListener("podium:fragment", (event) => {
    if ((event as CustomEvent<{ name: string }>).detail.name === "metrics") drawCharts();
  });
}
