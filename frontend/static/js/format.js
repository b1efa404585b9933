// How a number is written on every page; backend/reports/numbers.py writes the API's texts the same way.
// toFixed rounds a float's exact value half away from zero (65.625 is "65.63"), and the Python twin
// does the same; the minus sign is the typographic one, and a delta always carries its sign. A delta is
// the API's difference of the unrounded figures (numbers.py's delta_between), rounded here once.

export const NONE = "–";
const MINUS = "−";

export function number(value, digits = 2) {
  if (value === null || value === undefined) return NONE;
  const text = value.toFixed(digits);
  // A figure that rounds to zero has no sign: a delta of -0.001 reads "+0.00", never "−0.00".
  return (Number(text) === 0 ? text.replace("-", "") : text).replace("-", MINUS);
}

export function signed(value, digits = 2) {
  const text = number(value, digits);
  return text.startsWith(MINUS) ? text : `+${text}`;
}

export function pValue(p) {
  if (p < 0.001) return "p<0.001";
  return `p=${number(p, p < 0.1 ? 3 : 2)}`;
}

// "81.55 (+3.02p)", "81.55" without a delta, "–" without a value.
export function withDelta(value, delta) {
  if (value === null || value === undefined) return NONE;
  return delta === null || delta === undefined ? number(value) : `${number(value)} (${signed(delta)}p)`;
}

// "81.55 / 96.17", or "–".
export function pair(a, b) {
  return a === null || a === undefined ? NONE : `${number(a)} / ${number(b)}`;
}

// "81.55 ± 0.42", or the mean alone below two seeds.
export function meanStd(mean, std) {
  if (mean === null || mean === undefined) return NONE;
  return std === null || std === undefined ? number(mean) : `${number(mean)} ± ${number(std)}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return NONE;
  if (seconds < 90) return `${number(seconds, 1)} s`;
  if (seconds < 5400) return `${number(seconds / 60, 1)} min`;
  return `${number(seconds / 3600, 1)} h`;
}

// The one set of definitions every page labels its figures with: "peak" and "checkpoint" name two
// epochs, as the API's peak_* and checkpoint_* fields do.
export const PEAK_EPOCH = "the epoch with the highest valid top-1 (the report's figure)";
export const KEPT_CHECKPOINT = "the checkpoint the trainer kept: the lowest valid loss";

// "81.55 / 96.17 (epoch 6)"
export function atEpoch(text, epoch) {
  return text === NONE || epoch === null || epoch === undefined ? text : `${text} (epoch ${epoch})`;
}

// "23 %" for a share in [0, 1], or "–".
export function share(value) {
  return value === null || value === undefined ? NONE : `${number(value * 100, 0)} %`;
}

// "1,234 img/s", or "–".
export function imagesPerSecond(value) {
  return value === null || value === undefined ? NONE : `${Math.round(value).toLocaleString("en-US")} img/s`;
}

// Device memory in GiB, as torch and nvidia-smi count it: "9.8 GiB", or "–".
export function gibibytes(bytes) {
  return bytes === null || bytes === undefined ? NONE : `${number(bytes / 2 ** 30, 1)} GiB`;
}

// A file's or folder's size in bytes, binary units: "512 B", "3.4 KiB", "1.2 GiB", or "–".
export function fileSize(bytes) {
  if (bytes === null || bytes === undefined) return NONE;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${number(value, 1)} ${units[unit]}`;
}
