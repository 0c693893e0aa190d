// The ops dashboard: signs in on the page (the access token stays in this tab's
// sessionStorage), draws the picked event's seat map from its layout, colours it from the
// availability snapshot and keeps it current from the stream of changes, counts those
// changes by cause, and lists the live holds from the admin API, with a Release button each.
// Plain JavaScript for current browsers: no build step, nothing loaded from elsewhere.

const TOKEN_KEY = "seatlock.ops.token";
const STATES = ["available", "held", "reserved", "sold"];
const STATE_CODE = { available: 0, held: 1, reserved: 2, sold: 3 };
// The time series groups the stream's causes into a few lines.
const SERIES = [
  { name: "hold", causes: ["hold"] },
  { name: "release", causes: ["release", "ops_release", "cancellation"] },
  { name: "expiry", causes: ["expiry", "booking_expiry"] },
  { name: "booking", causes: ["booking"] },
  { name: "payment", causes: ["payment"] },
];
const SERIES_OF = Object.fromEntries(SERIES.flatMap((s) => s.causes.map((c) => [c, s.name])));
const COUNTERS = [
  ["hold", "holds"],
  ["release", "released by buyers"],
  ["ops_release", "released by ops"],
  ["expiry", "holds expired"],
  ["booking", "conversions (booking)"],
  ["payment", "paid"],
  ["booking_expiry", "payment windows closed"],
  ["cancellation", "cancellations"],
];
const WINDOW_SECONDS = 180; // the time series: the last three minutes
const RATE_SECONDS = 10; // holds per second: over the last ten seconds
const HOLDS_REFRESH_MS = 3000;
const HOLDS_LIMIT = 500;
const RESYNC_DELAY_MS = 3000;

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";

function svg(name, attributes = {}) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

function html(name, attributes = {}, text = "") {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

// Thrown once the page has shown why it stops (signed out, not an admin): callers unwind.
class Stopped extends Error {}

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function problemDetail(response) {
  try {
    const body = await response.json();
    return body.detail || body.title || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

// ---- the signed-in account --------------------------------------------------------------

const session = { token: sessionStorage.getItem(TOKEN_KEY), user: null };

function show(id) {
  for (const section of ["sign-in", "denied", "dashboard"]) $(section).hidden = section !== id;
  const signedIn = id === "dashboard";
  $("event-picker").hidden = !signedIn;
  $("live").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("who").textContent = signedIn && session.user ? session.user.email : "";
}

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

function forget() {
  session.token = null;
  session.user = null;
  sessionStorage.removeItem(TOKEN_KEY);
  closeView();
}

// Ends the session the sign-in opened (its refresh cookie), best effort.
function logout() {
  fetch("/api/auth/logout", {
    method: "POST",
    headers: { "X-Requested-With": "fetch" },
    credentials: "same-origin",
  }).catch(() => {});
}

function signInAgain(message) {
  forget();
  show("sign-in");
  $("sign-in-error").textContent = message || "";
  $("email").focus();
}

function deny(user) {
  const who = user ? `${user.email} is a ${user.role} account` : "This account is not an admin";
  forget();
  logout();
  notice("");
  $("denied-detail").textContent =
    `${who}: the live dashboard is for admins only. Sign in with an ADMIN account.`;
  show("denied");
}

async function refreshToken() {
  const response = await fetch("/api/auth/refresh", {
    method: "POST",
    headers: { "X-Requested-With": "fetch" },
    credentials: "same-origin",
  });
  if (!response.ok) return false;
  const body = await response.json();
  session.token = body.access_token;
  sessionStorage.setItem(TOKEN_KEY, session.token);
  return true;
}

// Calls the API with the bearer token: an expired token is refreshed once (the refresh
// cookie), a refusal of the role ends the dashboard.
async function api(path, options = {}, retried = false) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (response.status === 401 && session.token) {
    if (!retried && (await refreshToken())) return api(path, options, true);
    signInAgain("Your session ended: sign in again.");
    throw new Stopped();
  }
  if (response.status === 403) {
    deny(session.user);
    throw new Stopped();
  }
  if (!response.ok) throw new ApiError(response.status, await problemDetail(response));
  return response.status === 204 ? null : response.json();
}

async function signIn(event) {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  $("sign-in-button").disabled = true;
  try {
    const response = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ email: $("email").value, password: $("password").value }),
    });
    if (!response.ok) {
      $("sign-in-error").textContent = await problemDetail(response);
      return;
    }
    const body = await response.json();
    $("password").value = "";
    if (body.user.role !== "ADMIN") {
      deny(body.user);
      return;
    }
    session.token = body.access_token;
    session.user = body.user;
    sessionStorage.setItem(TOKEN_KEY, session.token);
    await start();
  } catch (error) {
    if (!(error instanceof Stopped)) $("sign-in-error").textContent = String(error.message);
  } finally {
    $("sign-in-button").disabled = false;
  }
}

// ---- the event on screen ----------------------------------------------------------------

let view = null;
let events = []; // those the picker offers
let picks = 0; // the newest pick wins when several are under way

function closeView() {
  if (view) view.close();
  view = null;
}

class EventView {
  constructor(event, layout) {
    this.event = event;
    this.layout = layout;
    this.count = layout.seat_count;
    this.index = new Map(); // seat id -> layout index
    this.places = new Array(this.count); // layout index -> "A · 3 · 7"
    this.states = new Uint8Array(this.count);
    this.cells = new Array(this.count);
    this.version = null;
    this.source = null;
    this.closed = false;
    this.timers = [];
    this.holds = new Map(); // hold id -> {hold, deadline, row}
    this.totals = Object.fromEntries(COUNTERS.map(([cause]) => [cause, { changes: 0, seats: 0 }]));
    this.ring = Object.fromEntries(SERIES.map((s) => [s.name, new Float64Array(WINDOW_SECONDS)]));
    this.head = Math.floor(Date.now() / 1000);
    this.renderPending = false;
    this.holdsPending = null;
  }

  close() {
    this.closed = true;
    if (this.source) this.source.close();
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.holdsPending);
  }

  // -- the seat map

  draw() {
    const CELL = 12;
    const SEAT = 10;
    const LABEL = 34;
    const widest = this.layout.rows.reduce((most, row) => Math.max(most, row.seat_ids.length), 1);
    const map = svg("svg", { class: "seats", role: "img", "aria-label": "seat map" });
    let y = 0;
    let section = -1;
    for (const row of this.layout.rows) {
      if (row.section !== section) {
        section = row.section;
        y += section === this.layout.rows[0].section ? 12 : 22;
        const name = this.layout.sections[section].name;
        map.append(svg("text", { x: 0, y: y - 3, class: "section-label" }));
        map.lastChild.textContent = `Section ${name}`;
      }
      const label = svg("text", { x: LABEL - 6, y: y + SEAT - 1, class: "row-label" });
      label.textContent = row.row;
      map.append(label);
      const sectionName = this.layout.sections[row.section].name;
      row.seat_ids.forEach((seatId, i) => {
        const index = row.first_index + i;
        const cell = svg("rect", {
          x: LABEL + i * CELL,
          y,
          width: SEAT,
          height: SEAT,
          rx: 2,
          class: "seat",
          "data-seat-id": seatId,
          "data-index": index,
          "data-state": "available",
        });
        this.index.set(seatId, index);
        this.places[index] = `${sectionName} · row ${row.row} · seat ${row.numbers[i]}`;
        this.cells[index] = cell;
        map.append(cell);
      });
      y += CELL;
    }
    const width = LABEL + widest * CELL;
    map.setAttribute("viewBox", `0 0 ${width} ${y + 2}`);
    // Small maps are drawn larger; CSS keeps any map within its card.
    map.setAttribute("width", Math.round(width * 2));
    map.addEventListener("mouseover", (e) => {
      const index = e.target.dataset && e.target.dataset.index;
      if (index === undefined) return;
      $("seat-info").textContent = `${this.places[index]} · ${STATES[this.states[index]]}`;
    });
    $("seat-map").replaceChildren(map);
    $("map-meta").textContent = `${this.count} seats, ${this.layout.rows.length} rows`;
  }

  setState(index, code) {
    if (this.states[index] === code) return;
    this.states[index] = code;
    this.cells[index].setAttribute("data-state", STATES[code]);
  }

  // -- the snapshot and the stream

  async sync() {
    if (this.source) this.source.close();
    this.source = null;
    // Revalidated (ETag, 304): a snapshot from the browser's cache could be older than
    // the version the stream then starts from.
    const snapshot = await api(`/api/events/${this.event.id}/availability`, { cache: "no-cache" });
    if (this.closed) return;
    if (snapshot.layout_version && snapshot.layout_version !== this.layout.version) {
      // The seat map changed since it was drawn: draw the new one.
      pick(this.event.id).catch(report);
      return;
    }
    const taken = new Uint8Array(this.count);
    for (const state of ["held", "reserved", "sold"]) {
      for (const index of decode(snapshot[state])) taken[index] = STATE_CODE[state];
    }
    for (let index = 0; index < this.count; index++) this.setState(index, taken[index]);
    this.version = snapshot.version;
    if (snapshot.version === null) {
      // Redis is unreachable: the snapshot came from PostgreSQL without holds.
      notice("Redis is unreachable: holds are not shown; retrying.");
      this.later(() => this.sync(), RESYNC_DELAY_MS);
    } else {
      notice("");
      this.listen(snapshot.version);
    }
    this.scheduleRender();
  }

  listen(since) {
    const source = new EventSource(
      `/api/events/${this.event.id}/availability/stream?since=${encodeURIComponent(since)}`,
    );
    this.source = source;
    source.addEventListener("open", () => live("live", "live"));
    source.addEventListener("changes", (e) => this.onChanges(JSON.parse(e.data)));
    source.addEventListener("resync", () => this.later(() => this.sync(), 0));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused outright (not a dropped connection, which EventSource resumes itself).
        live("down", "stream closed, retrying");
        this.later(() => this.sync(), RESYNC_DELAY_MS);
      } else {
        live("down", "reconnecting");
      }
    });
  }

  later(action, ms) {
    setTimeout(() => {
      if (!this.closed) action().catch(report);
    }, ms);
  }

  onChanges(frame) {
    const now = Math.floor(Date.now() / 1000);
    let holdsChanged = false;
    for (const change of frame.changes) {
      if (this.version !== null && change.version <= this.version) continue;
      this.version = change.version;
      const code = STATE_CODE[change.state];
      for (const seatId of change.seats) {
        const index = this.index.get(seatId);
        if (index !== undefined && code !== undefined) this.setState(index, code);
      }
      const total = this.totals[change.cause];
      if (total) {
        total.changes += 1;
        total.seats += change.seats.length;
      }
      if (SERIES_OF[change.cause]) this.record(SERIES_OF[change.cause], now);
      // Every change but a cache correction comes from some hold's life.
      holdsChanged ||= change.cause !== "refresh";
    }
    if (holdsChanged) this.refreshHoldsSoon();
    this.scheduleRender();
  }

  // -- counters and the time series

  roll(now) {
    if (now - this.head >= WINDOW_SECONDS) this.head = now - WINDOW_SECONDS;
    while (this.head < now) {
      this.head += 1;
      for (const series of SERIES) this.ring[series.name][this.head % WINDOW_SECONDS] = 0;
    }
  }

  record(series, now) {
    this.roll(now);
    this.ring[series][now % WINDOW_SECONDS] += 1;
  }

  // The last `seconds` whole seconds of a series, oldest first.
  recent(series, seconds, now) {
    const values = [];
    for (let s = now - seconds; s < now; s++) values.push(this.ring[series][s % WINDOW_SECONDS]);
    return values;
  }

  scheduleRender() {
    if (this.renderPending) return;
    this.renderPending = true;
    requestAnimationFrame(() => {
      this.renderPending = false;
      if (!this.closed) this.renderCounts();
    });
  }

  renderCounts() {
    const sections = this.layout.sections.map((s) => ({ name: s.name, n: [0, 0, 0, 0] }));
    const all = [0, 0, 0, 0];
    for (const section of this.layout.sections.keys()) {
      const { first_index: first, seat_count: count } = this.layout.sections[section];
      for (let index = first; index < first + count; index++) {
        sections[section].n[this.states[index]] += 1;
        all[this.states[index]] += 1;
      }
    }
    const rows = sections.map((s) => countRow(s.name, s.n));
    $("seat-counts").tBodies[0].replaceChildren(...rows);
    $("seat-counts").tFoot.replaceChildren(countRow("all", all, "total"));
    $("state-bar").replaceChildren(
      ...STATES.map((state, code) => {
        const part = html("span", { class: `part ${state}`, title: `${state}: ${all[code]}` });
        part.style.flexGrow = String(all[code]);
        return part;
      }),
    );
    $("version").textContent = this.version === null ? "" : `version ${this.version}`;
    this.renderActivity();
  }

  renderActivity() {
    const now = Math.floor(Date.now() / 1000);
    this.roll(now);
    const rate = this.recent("hold", RATE_SECONDS, now).reduce((a, b) => a + b, 0) / RATE_SECONDS;
    const holds = this.totals.hold.changes;
    const items = [["rate", "holds / s", rate.toFixed(1)]];
    for (const [cause, label] of COUNTERS) {
      const total = this.totals[cause];
      items.push([cause, label, `${total.changes} (${plural(total.seats, "seat")})`]);
    }
    const converted = holds ? `${Math.round((100 * this.totals.booking.changes) / holds)}%` : "–";
    items.push(["conversion", "bookings per hold", converted]);
    $("counters").replaceChildren(
      ...items.flatMap(([key, label, value]) => [
        html("dt", {}, label),
        html("dd", { "data-counter": key }, value),
      ]),
    );
    this.renderSparkline(now);
  }

  renderSparkline(now) {
    const lines = SERIES.map((s) => [s.name, this.recent(s.name, WINDOW_SECONDS, now)]);
    const top = Math.max(1, ...lines.flatMap(([, values]) => values));
    const chart = $("sparkline");
    chart.replaceChildren(svg("line", { x1: 0, y1: 63, x2: 300, y2: 63, class: "axis" }));
    for (const [name, values] of lines) {
      if (!values.some((v) => v)) continue;
      const points = values
        .map((v, i) => `${((300 * i) / (values.length - 1)).toFixed(1)},${(62 - (58 * v) / top).toFixed(1)}`)
        .join(" ");
      chart.append(svg("polyline", { points, class: `spark ${name}` }));
    }
    $("spark-top").textContent = `top ${top}/s`;
  }

  // -- live holds

  refreshHoldsSoon() {
    if (this.holdsPending) return;
    this.holdsPending = setTimeout(() => {
      this.holdsPending = null;
      if (!this.closed) this.refreshHolds().catch(report);
    }, 250);
  }

  async refreshHolds() {
    const answer = await api(`/api/admin/events/${this.event.id}/holds?limit=${HOLDS_LIMIT}`);
    if (this.closed) return;
    const seen = new Set();
    const body = $("holds").tBodies[0];
    for (const hold of answer.items) {
      seen.add(hold.id);
      const deadline = performance.now() + hold.seconds_left * 1000;
      const known = this.holds.get(hold.id);
      if (known) {
        known.hold = hold;
        known.deadline = deadline;
        known.row.querySelector(".state").textContent = hold.state;
      } else {
        const row = this.holdRow(hold);
        this.holds.set(hold.id, { hold, deadline, row });
      }
    }
    for (const [id, known] of this.holds) {
      if (!seen.has(id)) {
        known.row.remove();
        // Gone from under the pointer, so no mouseleave comes to undo its outline.
        this.outline(known.hold.seats, false);
        this.holds.delete(id);
      }
    }
    // Soonest to expire first.
    const order = [...this.holds.values()].sort((a, b) => a.deadline - b.deadline);
    body.replaceChildren(...order.map((known) => known.row));
    $("holds-empty").hidden = this.holds.size > 0;
    const more = answer.total > answer.items.length ? ` (first ${answer.items.length})` : "";
    $("holds-meta").textContent = `${answer.total} live${more}`;
    this.tick();
  }

  holdRow(hold) {
    const row = html("tr", { "data-hold-id": hold.id });
    const labels = hold.seats.map((id) => this.places[this.index.get(id)] || id);
    const shown = labels.slice(0, 4).join(", ") + (labels.length > 4 ? ` +${labels.length - 4}` : "");
    const release = html("button", { type: "button", class: "release", "data-release": hold.id }, "Release");
    release.addEventListener("click", () => this.release(hold.id, release).catch(report));
    row.append(
      html("td", { class: "mono", title: hold.id }, hold.id.slice(-8)),
      html("td", { class: "mono", title: hold.owner_id }, hold.owner_id.slice(0, 8)),
      html("td", { title: labels.join("\n") }, shown),
      html("td", { class: "state" }, hold.state),
      html("td", { class: "left" }),
      html("td", {}, ""),
    );
    row.lastChild.append(release);
    // Pointing at a hold outlines its seats on the map.
    row.addEventListener("mouseenter", () => this.outline(hold.seats, true));
    row.addEventListener("mouseleave", () => this.outline(hold.seats, false));
    return row;
  }

  outline(seats, on) {
    for (const id of seats) {
      const index = this.index.get(id);
      if (index !== undefined) this.cells[index].classList.toggle("outlined", on);
    }
  }

  async release(holdId, button) {
    button.disabled = true;
    button.textContent = "Releasing…";
    try {
      await api(`/api/admin/holds/${encodeURIComponent(holdId)}`, { method: "DELETE" });
    } catch (error) {
      // Gone already (expired, booked): the refresh below tells.
      if (!(error instanceof ApiError) || error.status !== 404) {
        button.disabled = false;
        button.textContent = "Release";
        throw error;
      }
    }
    await this.refreshHolds();
  }

  tick() {
    const now = performance.now();
    for (const known of this.holds.values()) {
      const left = Math.max(0, (known.deadline - now) / 1000);
      const cell = known.row.querySelector(".left");
      cell.textContent = left > 0 ? clock(left) : "expiring";
      cell.classList.toggle("soon", left < 30);
    }
  }

  // -- the hold report (holds by age, top holders, price categories)

  async refreshReport() {
    let answer;
    try {
      answer = await api(`/api/admin/events/${this.event.id}/report`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      $("report-detail").textContent = `Report unavailable: ${error.message}`;
      $("report-body").hidden = true;
      return;
    }
    if (this.closed) return;
    $("report-detail").textContent = "";
    $("report-body").hidden = false;
    const holds = answer.holds;
    $("report-ages").tBodies[0].replaceChildren(
      ...holds.by_age.map((b) => tableRow([b.label, b.holds, b.seats])),
    );
    const soon = holds.expiring_soon;
    $("report-soon").textContent =
      `${plural(soon.holds, "hold")} (${plural(soon.seats, "seat")}) expire within ` +
      `${soon.within_seconds} s; ${holds.converting} being booked`;
    $("report-holders").tBodies[0].replaceChildren(
      ...answer.top_holders.map((h) => {
        const row = tableRow([h.owner_id.slice(0, 8), h.holds, h.seats]);
        row.firstChild.title = h.owner_id;
        row.firstChild.className = "mono";
        return row;
      }),
    );
    $("report-categories").tBodies[0].replaceChildren(
      ...answer.price_categories.map((c) =>
        tableRow([c.name, c.available, c.held, c.reserved, c.sold]),
      ),
    );
  }

  start() {
    this.draw();
    this.timers.push(setInterval(() => this.refreshHolds().catch(report), HOLDS_REFRESH_MS));
    this.timers.push(setInterval(() => this.refreshReport().catch(report), HOLDS_REFRESH_MS));
    this.timers.push(setInterval(() => this.tick(), 250));
    this.timers.push(setInterval(() => this.renderActivity(), 1000));
    return Promise.all([this.sync(), this.refreshHolds(), this.refreshReport()]);
  }
}

function tableRow(cells) {
  const row = html("tr");
  cells.forEach((cell, i) => row.append(html(i ? "td" : "th", {}, String(cell))));
  return row;
}

function countRow(name, n, cls = "") {
  const row = html("tr", { class: cls, "data-section": name });
  row.append(html("th", {}, name));
  for (const [code, state] of STATES.entries()) {
    row.append(html("td", { "data-state-count": state }, String(n[code])));
  }
  return row;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function clock(seconds) {
  const whole = Math.ceil(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

// The layout indexes of one state of the snapshot, in either of its encodings.
function decode(part) {
  if (part.encoding === "indexes") return part.data;
  const bytes = atob(part.data);
  const indexes = [];
  for (let b = 0; b < bytes.length; b++) {
    const byte = bytes.charCodeAt(b);
    if (!byte) continue;
    for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) indexes.push(b * 8 + bit);
  }
  return indexes;
}

function live(state, text) {
  $("live").className = `live ${state}`;
  $("live").textContent = text;
}

function report(error) {
  if (error instanceof Stopped) return;
  notice(`Error: ${error.message}`);
}

// ---- putting it together ----------------------------------------------------------------

async function pick(eventId) {
  const ticket = ++picks;
  closeView();
  const event = events.find((e) => e.id === eventId);
  if (!event) return;
  history.replaceState(null, "", `#event=${eventId}`);
  live("down", "connecting");
  const layout = await api(`/api/events/${eventId}/layout`);
  if (ticket !== picks) return;
  const opened = new EventView(event, layout);
  view = opened;
  await opened.start();
}

async function start() {
  notice("");
  if (!session.user) session.user = await api("/api/auth/me");
  if (session.user.role !== "ADMIN") {
    deny(session.user);
    return;
  }
  show("dashboard");
  const page = await api("/api/events?limit=100");
  events = page.items;
  const select = $("event");
  select.replaceChildren(
    ...events.map((e) =>
      html("option", { value: e.id }, `${e.title} · ${e.status} · ${e.starts_at.slice(0, 10)}`),
    ),
  );
  select.onchange = () => pick(select.value).catch(report);
  if (!events.length) {
    notice("No events yet.");
    return;
  }
  const wanted = new URLSearchParams(location.hash.slice(1)).get("event");
  const first = events.find((e) => e.id === wanted) || events.find((e) => e.status === "on_sale");
  select.value = (first || events[0]).id;
  await pick(select.value);
}

$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", () => {
  logout();
  signInAgain("");
});
$("denied-sign-out").addEventListener("click", () => signInAgain(""));
// A page left for another may be kept frozen (the back/forward cache) with its stream open:
// close the stream on the way out, and catch up from a fresh snapshot on the way back.
window.addEventListener("pagehide", () => {
  if (view && view.source) view.source.close();
});
window.addEventListener("pageshow", (event) => {
  if (event.persisted && view) view.sync().catch(report);
});

if (session.token) {
  start().catch(report);
} else {
  show("sign-in");
}
