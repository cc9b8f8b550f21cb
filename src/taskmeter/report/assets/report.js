// taskmeter HTML report: a virtualised task tree with a timeline and resource bars.
(function () {
  "use strict";
  var started = performance.now();
  var D = JSON.parse(document.getElementById("taskmeter-data").textContent);
  var STATUS = D.statuses; // as `taskmeter show` shows them, "interrupted" and "stopped" included
  var STOPPED = D.stopped || {};
  var C = {};
  D.columns.forEach(function (name, i) { C[name] = i; });
  var tasks = D.tasks;
  var n = tasks.length;
  var ROW = 22;
  var INDENT_LEVELS = 12;

  // ------------------------------------------------------------ tree structure
  var children = new Array(n);
  var depth = new Int32Array(n);
  var subtree = new Int32Array(n); // size of each subtree (preorder: descendants follow)
  for (var i = 0; i < n; i++) children[i] = [];
  for (i = 0; i < n; i++) {
    var p = tasks[i][C.parent];
    if (p >= 0) { children[p].push(i); depth[i] = depth[p] + 1; }
  }
  for (i = n - 1; i >= 0; i--) {
    var size = 1, kids = children[i];
    for (var k = 0; k < kids.length; k++) size += subtree[kids[k]];
    subtree[i] = size;
  }
  var expanded = new Uint8Array(n);

  function max(column) {
    var m = 0;
    for (var j = 0; j < n; j++) { var v = tasks[j][column]; if (v != null && v > m) m = v; }
    return m;
  }
  var maxima = { total: max(C.total), mem: max(C.mem), gpu: max(C.gpu), energy: max(C.energy) };

  // ------------------------------------------------------------ formatting
  var fmtSeconds = taskmeterFormat.seconds, fmtBytes = taskmeterFormat.bytes;
  var fmtJoules = taskmeterFormat.energy, fmtText = taskmeterFormat.text;
  // A tick's time, exactly: below a minute as fmtSeconds writes it (trailing zeros
  // dropped: "1.5s", "500ms"); from a minute on, ticks are whole seconds, written in
  // hours, minutes and seconds ("1h15m", "1m30s"; a rounded "1.3 h" was 1h15m).
  function fmtTick(s) {
    if (s < 60) return fmtSeconds(s).replace(/(\.\d*?)0+s$/, "$1s").replace(".s", "s");
    if (s >= 3600 * 1e15) return String(s / 3600) + "h"; // past exact integers: 2.4e+297h
    var whole = Math.round(s);
    var hours = Math.floor(whole / 3600), minutes = Math.floor(whole % 3600 / 60), seconds = whole % 60;
    return (hours ? hours + "h" : "") + (minutes ? minutes + "m" : "") + (seconds ? seconds + "s" : "");
  }

  // The filter finds a task by the label as the page shows it (control and format
  // characters written escaped) as well as by the label itself: typing what one sees
  // finds the task.
  var shownLabels = tasks.map(function (t) { return fmtText(t[C.label]).toLowerCase(); });
  var rawLabels = tasks.map(function (t, j) {
    var raw = t[C.label].toLowerCase();
    return raw === shownLabels[j] ? null : raw;
  });

  // ------------------------------------------------------------ header
  function statusOf(t) { return STATUS[tasks[t][C.status]] || "pending"; }
  function memText(task) {
    var bound = task[C.mem_bound];
    return task[C.mem] == null && bound != null ? "<= " + fmtBytes(bound) : fmtBytes(task[C.mem]);
  }
  // Energy that lacks a domain other tasks of the tree have (a GPU that could not be read)
  // ends in "*", as in the table of `taskmeter show`, and its bar is hatched: it is a part.
  var PARTIAL = D.partial_energy || {};
  var DOMAIN_NAMES = { cpu: "CPU", gpu: "GPU", system: "system" };
  function energyText(t) { return fmtJoules(tasks[t][C.energy]) + (PARTIAL[t] ? "*" : ""); }
  function missingText(t) {
    return PARTIAL[t].map(function (d) { return DOMAIN_NAMES[d] || fmtText(d); }).join(" or ");
  }
  if (D.partial_energy_note) {
    var note = document.getElementById("partial-note");
    note.textContent = D.partial_energy_note;
    note.hidden = false;
  }

  var root = tasks[0];
  var notRunning = [[Object.keys(D.interrupted).length, "interrupted"],
                    [Object.keys(STOPPED).length, "stopped"]]
    .filter(function (pair) { return pair[0]; })
    .map(function (pair) { return pair[0] + " " + pair[1]; }).join(", ");
  document.getElementById("meta").textContent =
    (D.file ? fmtText(D.file) + " · " : "") + n + " task" + (n === 1 ? "" : "s") +
    (notRunning ? " (" + notRunning + ")" : "") +
    (D.started ? " · started " + D.started : "") + " · taskmeter " + D.version;
  var totals = document.getElementById("totals");
  [["duration", fmtSeconds(root[C.duration])], ["CPU time", fmtSeconds(root[C.total])],
   ["peak memory", memText(root)], ["energy", energyText(0)]
  ].forEach(function (pair) {
    var dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = pair[0]; dd.textContent = pair[1];
    totals.appendChild(dt); totals.appendChild(dd);
  });

  // ------------------------------------------------------------ timeline axis
  var span = D.span > 0 ? D.span : 1;
  (function drawAxis() {
    var axis = document.getElementById("axis");
    var steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60,
                 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400];
    var step = 0;
    for (var s = 0; s < steps.length; s++) { if (span / steps[s] <= 6) { step = steps[s]; break; } }
    // Longer than 6 days: whole days, a power of ten of them, so at most 10 ticks are drawn
    // (a span of 1e300 s in a hand-made file hung the page when ticks were a day apart).
    if (!step) step = 86400 * Math.pow(10, Math.ceil(Math.log10(span / 86400 / 10)));
    for (var i = 0, t = 0; i <= 10 && t <= span * 1.0001; t = ++i * step) {
      var tick = document.createElement("span");
      tick.className = "tick";
      tick.style.left = (100 * t / span) + "%";
      tick.textContent = t === 0 ? "0" : fmtTick(t);
      axis.appendChild(tick);
    }
  })();

  // ------------------------------------------------------------ visible rows
  var visible = [];
  var matches = null; // Uint8Array of tasks matching the filter, or null
  var keep = null;    // matches and their ancestors

  function computeVisible() {
    visible = [];
    if (keep) {
      for (var j = 0; j < n; j++) if (keep[j]) visible.push(j);
    } else {
      var stack = [0];
      while (stack.length) {
        var t = stack.pop();
        visible.push(t);
        if (expanded[t]) {
          var kids = children[t];
          for (var k = kids.length - 1; k >= 0; k--) stack.push(kids[k]);
        }
      }
    }
    document.getElementById("spacer").style.height = (visible.length * ROW) + "px";
    document.getElementById("count").textContent =
      visible.length + " of " + n + " task" + (n === 1 ? "" : "s") + " shown";
  }

  function applyFilter(text) {
    var q = text.trim().toLowerCase();
    if (!q) { matches = keep = null; computeVisible(); render(); return; }
    matches = new Uint8Array(n); keep = new Uint8Array(n);
    for (var j = 0; j < n; j++) {
      if (shownLabels[j].indexOf(q) >= 0 || (rawLabels[j] !== null && rawLabels[j].indexOf(q) >= 0)) {
        matches[j] = 1;
        for (var a = j; a >= 0 && !keep[a]; a = tasks[a][C.parent]) keep[a] = 1;
      }
    }
    computeVisible();
    viewport.scrollTop = 0;
    render();
  }

  function expandLevels(limit) {
    // Open whole levels while the rows shown stay within the limit.
    var shown = 1, frontier = [0];
    while (frontier.length) {
      var next = [];
      for (var f = 0; f < frontier.length; f++) next = next.concat(children[frontier[f]]);
      if (!next.length || shown + next.length > limit) break;
      for (f = 0; f < frontier.length; f++) expanded[frontier[f]] = 1;
      shown += next.length;
      frontier = next;
    }
    if (children[0].length) expanded[0] = 1;
  }

  // ------------------------------------------------------------ rendering
  var viewport = document.getElementById("viewport");
  var spacer = document.getElementById("spacer");
  var pool = [];
  var pinned = -1, hovered = -1;

  function cell(cls) { var d = document.createElement("div"); d.className = cls; return d; }
  function makeRow() {
    var row = cell("row");
    var label = cell("c-label");
    var level = document.createElement("span"); level.className = "level"; level.title = "level below the root";
    var toggle = document.createElement("span"); toggle.className = "toggle";
    var text = document.createElement("span"); text.className = "text";
    var badge = document.createElement("span"); badge.className = "badge"; badge.textContent = "proc";
    var state = document.createElement("span"); state.className = "state";
    label.appendChild(level); label.appendChild(toggle); label.appendChild(text); label.appendChild(badge); label.appendChild(state);
    var time = cell("c-time"); var bar = cell("bar"); time.appendChild(bar);
    row.appendChild(label); row.appendChild(time);
    row.res = [];
    for (var r = 0; r < 4; r++) {
      var res = cell("res"); var fill = cell("fill"); var value = document.createElement("span");
      res.appendChild(fill); res.appendChild(value); row.appendChild(res);
      row.res.push([fill, value]);
    }
    row.parts = { label: label, level: level, toggle: toggle, text: text, badge: badge, state: state, bar: bar };
    spacer.appendChild(row);
    return row;
  }

  function setRes(pair, value, maximum, formatted) {
    pair[0].style.width = value != null && maximum > 0 ? "calc((100% - 12px) * " + (value / maximum).toFixed(4) + ")" : "0";
    pair[1].textContent = formatted;
  }

  function fill(row, t, position) {
    var task = tasks[t], parts = row.parts;
    row.style.top = (position * ROW) + "px";
    row.style.display = "";
    row.dataset.index = t;
    row.dataset.taskId = task[C.id];
    row.className = "row" + (t === pinned ? " selected" : "") + (matches && matches[t] ? " match" : "");
    // Indented up to INDENT_LEVELS; deeper rows write their level instead, so that the
    // label of a task 127 levels down stays in its column (it was pushed out of view).
    parts.label.style.paddingLeft = (8 + Math.min(depth[t], INDENT_LEVELS) * 14) + "px";
    parts.level.textContent = depth[t] > INDENT_LEVELS ? String(depth[t]) : "";
    parts.level.style.display = depth[t] > INDENT_LEVELS ? "" : "none";
    parts.toggle.textContent = keep || !children[t].length ? "" : (expanded[t] ? "▾" : "▸");
    parts.text.textContent = fmtText(task[C.label]);
    parts.badge.style.display = task[C.proc] ? "" : "none";
    var status = statusOf(t);
    // Every status but finished is written beside the label, as the table of `show` does.
    parts.state.textContent = status === "finished" ? "" : status;
    parts.state.className = "state " + status;
    parts.state.style.display = status === "finished" ? "none" : "";
    row.dataset.status = status;
    var start = task[C.start], duration = task[C.duration];
    if (start == null) { parts.bar.style.display = "none"; }
    else {
      parts.bar.style.display = "";
      parts.bar.className = "bar " + status;
      // The axis is inset by 8px on each side; the bars follow it.
      parts.bar.style.left = "calc(8px + (100% - 16px) * " + (start / span).toFixed(5) + ")";
      parts.bar.style.width = "calc((100% - 16px) * " + ((duration || 0) / span).toFixed(5) + ")";
    }
    setRes(row.res[0], task[C.total], maxima.total, fmtSeconds(task[C.total]));
    setRes(row.res[1], task[C.mem], maxima.mem, memText(task));
    setRes(row.res[2], task[C.gpu], maxima.gpu, fmtBytes(task[C.gpu]));
    setRes(row.res[3], task[C.energy], maxima.energy, energyText(t));
    row.res[3][0].className = PARTIAL[t] ? "fill partial" : "fill";
    row.res[3][0].parentNode.title = PARTIAL[t] ? "partial: no " + missingText(t) + " energy measured" : "";
  }

  function render() {
    var top = viewport.scrollTop, height = viewport.clientHeight || 600;
    var first = Math.max(0, Math.floor(top / ROW) - 10);
    var last = Math.min(visible.length, Math.ceil((top + height) / ROW) + 10);
    var count = Math.max(0, last - first);
    while (pool.length < count) pool.push(makeRow());
    for (var r = 0; r < pool.length; r++) {
      if (r < count) fill(pool[r], visible[first + r], first + r);
      else pool[r].style.display = "none";
    }
  }

  var scheduled = false;
  viewport.addEventListener("scroll", function () {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(function () { scheduled = false; render(); });
  });
  window.addEventListener("resize", render);

  // ------------------------------------------------------------ details
  var details = document.getElementById("details");
  function showDetails(t) {
    var task = tasks[t];
    var extra = D.extra[t] || {};
    details.textContent = "";
    var h = document.createElement("h2"); h.textContent = fmtText(task[C.label]); details.appendChild(h);
    var rows = [
      ["status", statusOf(t) + (D.interrupted[t] || STOPPED[t] ? ": " + fmtText(D.interrupted[t] || STOPPED[t]) : "")],
      ["starts at", task[C.start] == null ? "-" : "+" + fmtSeconds(task[C.start])],
      ["duration", fmtSeconds(task[C.duration])],
      ["CPU, this task", fmtSeconds(task[C.cpu])],
      ["CPU, with workers", fmtSeconds(task[C.total])],
      ["CPU user / system", fmtSeconds(task[C.user]) + " / " + fmtSeconds(task[C.system])],
      ["peak memory", memText(task)],
      ["peak GPU memory", fmtBytes(task[C.gpu])],
      ["energy", energyText(t) + (PARTIAL[t] ? " (partial: no " + missingText(t) + " energy measured)" : "")]
    ];
    (D.energy[t] || []).forEach(function (e) {
      rows.push(["  " + e[0], fmtJoules(e[1]) + (e[2] ? " (" + fmtText(e[2]) + ")" : "")]);
    });
    rows.push(["subtasks", String(children[t].length) + (subtree[t] > children[t].length + 1 ? " (" + (subtree[t] - 1) + " below)" : "")]);
    rows.push(["worker process", task[C.proc] ? "yes" : "no"]);
    rows.push(["pid", task[C.pid] == null ? "-" : String(task[C.pid])]);
    rows.push(["host", fmtText(D.hosts[task[C.host]] || "-")]);
    if (task[C.machine] != null) rows.push(["machine", fmtText(D.machines[task[C.machine]])]);
    rows.push(["task id", task[C.id]]);
    Object.keys(extra).forEach(function (key) {
      rows.push([fmtText(key), fmtText(typeof extra[key] === "string" ? extra[key] : JSON.stringify(extra[key]))]);
    });
    var table = document.createElement("table");
    rows.forEach(function (pair) {
      var tr = document.createElement("tr"), th = document.createElement("th"), td = document.createElement("td");
      th.textContent = pair[0]; td.textContent = pair[1];
      tr.appendChild(th); tr.appendChild(td); table.appendChild(tr);
    });
    details.appendChild(table);
  }

  function rowIndex(event) {
    var row = event.target.closest(".row");
    return row ? Number(row.dataset.index) : -1;
  }
  viewport.addEventListener("mouseover", function (event) {
    var t = rowIndex(event);
    if (t < 0 || t === hovered) return;
    hovered = t;
    if (pinned < 0) showDetails(t);
  });
  viewport.addEventListener("mouseleave", function () {
    hovered = -1;
    if (pinned >= 0) showDetails(pinned);
  });
  viewport.addEventListener("click", function (event) {
    var t = rowIndex(event);
    if (t < 0) return;
    if (event.target.classList.contains("toggle") && children[t].length && !keep) {
      expanded[t] = expanded[t] ? 0 : 1;
      computeVisible();
    } else {
      pinned = pinned === t ? -1 : t;
      showDetails(t);
    }
    render();
  });

  // ------------------------------------------------------------ keyboard
  // The task tree takes the focus (Tab): up and down (page up and down, home, end) pick
  // a task and keep its figures in the details, right and left open and close it (or go
  // to its first subtask and to its parent), Enter and Space open or close it, Escape
  // lets the details follow the mouse again.
  function pick(position) {
    var t = visible[position];
    pinned = t;
    showDetails(t);
    var top = position * ROW, height = viewport.clientHeight || ROW;
    if (top < viewport.scrollTop) viewport.scrollTop = top;
    else if (top + ROW > viewport.scrollTop + height) viewport.scrollTop = top + ROW - height;
    render();
  }
  function toggle(t) {
    if (!children[t].length || keep) return;
    expanded[t] = expanded[t] ? 0 : 1;
    computeVisible();
  }
  viewport.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || !visible.length) return;
    var position = pinned >= 0 ? visible.indexOf(pinned) : -1;
    var t = position >= 0 ? visible[position] : visible[0];
    if (position < 0) position = 0;
    var last = visible.length - 1;
    var page = Math.max(1, Math.floor((viewport.clientHeight || ROW) / ROW) - 1);
    switch (event.key) {
      case "ArrowDown": position = pinned >= 0 ? Math.min(position + 1, last) : 0; break;
      case "ArrowUp": position = Math.max(position - 1, 0); break;
      case "PageDown": position = Math.min(position + page, last); break;
      case "PageUp": position = Math.max(position - page, 0); break;
      case "Home": position = 0; break;
      case "End": position = last; break;
      case "ArrowRight":
        if (children[t].length && !keep && !expanded[t]) toggle(t);
        else if (children[t].length && position < last) position += 1;
        break;
      case "ArrowLeft":
        if (children[t].length && !keep && expanded[t]) toggle(t);
        else if (tasks[t][C.parent] >= 0 && visible.indexOf(tasks[t][C.parent]) >= 0) {
          position = visible.indexOf(tasks[t][C.parent]);
        }
        break;
      case "Enter": case " ": toggle(t); break;
      case "Escape": pinned = -1; render(); event.preventDefault(); return;
      default: return;
    }
    event.preventDefault();
    pick(position);
  });

  // ------------------------------------------------------------ controls
  function setAll(value) {
    for (var j = 0; j < n; j++) expanded[j] = children[j].length ? value : 0;
    if (!value && children[0].length) expanded[0] = 1;
    computeVisible(); render();
  }
  document.getElementById("expand-all").addEventListener("click", function () { setAll(1); });
  document.getElementById("collapse-all").addEventListener("click", function () { setAll(0); });
  var filterTimer = 0;
  document.getElementById("search").addEventListener("input", function (event) {
    clearTimeout(filterTimer);
    var value = event.target.value;
    filterTimer = setTimeout(function () { applyFilter(value); }, 120);
  });

  expandLevels(400);
  computeVisible();
  render();
  showDetails(0);
  window.taskmeterReport = {
    render: render,
    expandAll: function () { setAll(1); },
    visibleCount: function () { return visible.length; },
    rowHeight: ROW,
    taskCount: n,
    renderMs: performance.now() - started
  };
})();
