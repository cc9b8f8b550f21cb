// taskmeter HTML report: figures written exactly as taskmeter.formats writes them in
// Python (friendly_seconds, friendly_bytes, friendly_energy), so the page and
// `taskmeter show` print the same text for the same number.
var taskmeterFormat = (function () {
  "use strict";

  // Python's format(x, ".Nf"): the exact value rounded to N digits, a tie (a value
  // exactly half way, such as 2.5 or 1.25) to the even digit.  toFixed rounds ties up.
  function fixed(x, digits) {
    // From 1e21 toFixed writes an exponent; such a number is whole, and Python writes
    // every digit of it: so does BigInt.
    if (Math.abs(x) >= 1e21 && isFinite(x)) {
      return BigInt(x).toString() + (digits ? "." + "0".repeat(digits) : "");
    }
    var text = x.toFixed(digits);
    var scaled = x * Math.pow(2, digits + 1); // an odd integer exactly at a tie
    if (Number.isInteger(scaled) && scaled % 2 !== 0) {
      var exact = Math.abs(x).toFixed(digits + 1); // the tie's digits, ending in 5
      var lower = exact.slice(0, digits ? -1 : -2);
      if ((lower.charCodeAt(lower.length - 1) - 48) % 2 === 0) text = (x < 0 ? "-" : "") + lower;
    }
    return text;
  }

  // Python's format(x, ".Ne") for a finite x of at least 10^N: the exact value's digits
  // (BigInt writes the whole part exactly; the fraction only decides ties), rounded to
  // N + 1 digits, a tie to the even digit; the exponent has two digits at least.
  function scientific(x, digits) {
    var negative = x < 0;
    var magnitude = Math.abs(x);
    var whole = Math.trunc(magnitude);
    var written = BigInt(whole).toString();
    var exponent = written.length - 1;
    var kept = BigInt(written.slice(0, digits + 1));
    var rest = written.slice(digits + 1);
    if (rest) {
      var half = "5" + "0".repeat(rest.length - 1);
      if (rest > half || (rest === half && (magnitude !== whole || kept % 2n === 1n))) kept += 1n;
    }
    var text = kept.toString();
    if (text.length > digits + 1) { text = text.slice(0, -1); exponent += 1; } // 9.99 -> 10.0
    return (negative ? "-" : "") + text[0] + (digits ? "." + text.slice(1) : "") +
      "e+" + (exponent < 10 ? "0" : "") + exponent;
  }

  var COMPACT_AFTER_S = 10000 * 3600;

  // Python's divmod for floats.
  function divmod(x, y) {
    var mod = x % y;
    var div = (x - mod) / y;
    if (mod && (y < 0) !== (mod < 0)) { mod += y; div -= 1; }
    var floor = Math.floor(div);
    if (div - floor > 0.5) floor += 1;
    return [floor, mod];
  }

  // friendly_seconds: LensKit's friendly_duration, rounded to what it shows first, a whole
  // minute or hour written in that unit (1m0.00s, not 60.00s).
  function seconds(s) {
    if (s == null) return "-";
    if (s >= 0.9995) s = Number(fixed(s, 2));
    if (s >= COMPACT_AFTER_S) return scientific(s / 3600, 2) + "h";
    if (s < 1) return fixed(s * 1000, 0) + "ms";
    if (s >= 3600) {
      var hours = divmod(s, 3600), minutes = divmod(hours[1], 60);
      return fixed(hours[0], 0) + "h" + fixed(minutes[0], 0) + "m" + fixed(minutes[1], 2) + "s";
    }
    if (s >= 60) {
      var parts = divmod(s, 60);
      return fixed(parts[0], 0) + "m" + fixed(parts[1], 2) + "s";
    }
    return fixed(s, 2) + "s";
  }

  var BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

  // friendly_bytes: the unit chosen after rounding, so 1048575 B is 1.0 MiB.
  function bytes(b) {
    if (b == null) return "-";
    var value = b;
    for (var u = 0; u < BYTE_UNITS.length; u++) {
      var text = fixed(value, u === 0 ? 0 : 1);
      if (Math.abs(Number(text)) < 1024) return text + " " + BYTE_UNITS[u];
      value /= 1024;
    }
    return scientific(b, 2) + " B";
  }

  var ENERGY_UNITS = [["J", 1], ["kJ", 1e3], ["MJ", 1e6]];

  // friendly_energy: the unit chosen after rounding, so 999.96 J is 1.0 kJ.
  function energy(j) {
    if (j == null) return "-";
    for (var u = 0; u < ENERGY_UNITS.length; u++) {
      var text = fixed(j / ENERGY_UNITS[u][1], 1);
      if (Math.abs(Number(text)) < 1000) return text + " " + ENERGY_UNITS[u][0];
    }
    return scientific(j, 2) + " J";
  }

  // terminal_text: control and format characters (escape sequences, line breaks, NUL,
  // bidirectional overrides, zero-width spaces) written escaped, as `taskmeter show` writes
  // them, so that a text of the task file cannot reorder or hide what the page shows.
  var HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
  var NAMED = { "\n": "\\n", "\r": "\\r", "\t": "\\t", "\u200c": "\u200c", "\u200d": "\u200d" };
  function hex(code, digits) { return ("0000000" + code.toString(16)).slice(-digits); }
  function text(value) {
    var s = String(value);
    HIDDEN.lastIndex = 0;
    if (!HIDDEN.test(s)) return s;
    return s.replace(HIDDEN, function (c) {
      if (Object.prototype.hasOwnProperty.call(NAMED, c)) return NAMED[c];
      var code = c.codePointAt(0);
      if (code < 0x100) return "\\x" + hex(code, 2);
      if (code < 0x10000) return "\\u" + hex(code, 4);
      return "\\U" + hex(code, 8);
    });
  }

  return { fixed: fixed, scientific: scientific, seconds: seconds, bytes: bytes, energy: energy, text: text };
})();
