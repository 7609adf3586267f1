// The Flotilla dashboard: polls the admin API once a second and redraws the page.
//
// Safety: every piece of data goes into the page as a text node or an attribute value
// (createTextNode, textContent, setAttribute), never as markup, so names and causes chosen by
// users cannot inject HTML. The page's Content-Security-Policy also refuses inline scripts.
//
// Auth: when the API answers 401 the page asks for the bearer token, keeps it in this tab's
// sessionStorage and sends it as `Authorization: Bearer …` on every fetch. A token can also be
// handed over in the URL fragment (`/#token=…`), which browsers never send to the server.
'use strict';

(() => {
  const POLL_MS = 1000;
  const WINDOW_S = 300;
  const SVG = 'http://www.w3.org/2000/svg';
  const COLORS = ['#4fa3ff', '#f08c3a', '#b07cf0', '#3ec7c2', '#e5534b', '#d4a72c'];
  const TOKEN_KEY = 'flotilla-admin-token';

  let token = sessionStorage.getItem(TOKEN_KEY);
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get('token')) {
    token = fragment.get('token');
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, '', location.pathname + location.search);
  }

  /** Capacity seen by polling, per group, for when the metrics store has no series yet. */
  const polledCapacity = new Map();

  class Unauthorized extends Error {}

  async function api(path) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const response = await fetch(path, { headers, cache: 'no-store' });
    if (response.status === 401) throw new Unauthorized('the admin API needs its bearer token');
    if (!response.ok) {
      let message = response.status + ' ' + response.statusText;
      try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
      const error = new Error(path + ': ' + message);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  /** Datapoints of one metric over the window as [{t (ms), v}], or null without a series. */
  async function metric(name, scope, statistic) {
    const q = new URLSearchParams({ scope, period: '1s', statistic, since: WINDOW_S + 's' });
    try {
      const body = await api('/v1/metrics/' + encodeURIComponent(name) + '?' + q);
      return body.datapoints.map(d => ({ t: Date.parse(d.time), v: d.value }));
    } catch (e) {
      if (e.status === 404) return null;
      throw e;
    }
  }

  const path = (...parts) => parts.map(encodeURIComponent).join('/');

  /** An element with attributes and children; strings become text nodes (never markup). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  const pad = n => String(n).padStart(2, '0');
  const clock = ms => {
    const d = new Date(ms);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  };
  function age(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + pad(s % 60) + 's';
    return Math.floor(s / 3600) + 'h ' + pad(Math.floor(s / 60) % 60) + 'm';
  }

  /** A round step for about `n` ticks up to `max`. */
  function niceStep(max, n) {
    const raw = max / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  }

  function formatValue(v, step) {
    const digits = step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
    return v.toFixed(digits);
  }

  /**
   * A line chart over [start, end] as an SVG element. `series`: [{name, points, color}];
   * `step` draws each value until the next one (capacities), otherwise lines join points and
   * break where a datapoint is missing (a second without requests has no latency).
   */
  function lineChart({ id, title, yLabel, series, start, end, step, integer }) {
    const W = 480, H = 200, L = 46, R = 10, T = 10, B = 34;
    const root = svg('svg', {
      viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, id,
      'data-points': series.reduce((n, s) => n + s.points.length, 0),
    });
    const all = series.flatMap(s => s.points.map(p => p.v));
    let max = Math.max(0, ...all);
    if (integer) max = Math.max(1, Math.ceil(max));
    if (max === 0) max = 1;
    const yStep = integer ? Math.max(1, Math.ceil(niceStep(max, 4))) : niceStep(max, 4);
    const top = Math.ceil(max / yStep - 1e-9) * yStep;
    const x = t => L + ((t - start) / (end - start)) * (W - L - R);
    const y = v => T + (1 - v / top) * (H - T - B);

    const grid = svg('g', { class: 'grid' });
    const axis = svg('g', { class: 'axis' });
    for (let v = 0; v <= top + 1e-9; v += yStep) {
      grid.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      axis.append(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, formatValue(v, yStep)));
    }
    // About five time ticks, on round seconds or minutes; labels drop the seconds when all
    // ticks are on whole minutes.
    const tick = [5, 10, 15, 30, 60, 120].map(s => s * 1000).find(s => (end - start) / s <= 6) || 300000;
    const label = t => (tick % 60000 === 0 ? clock(t).slice(0, 5) : clock(t));
    for (let t = Math.ceil(start / tick) * tick; t <= end; t += tick) {
      axis.append(svg('line', { x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4 }));
      axis.append(svg('text', { x: x(t), y: H - B + 16, 'text-anchor': 'middle' }, label(t)));
    }
    axis.append(svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B }));
    axis.append(svg('line', { x1: L, x2: L, y1: T, y2: H - B }));
    root.append(grid, axis);
    root.append(svg('text', { class: 'label', x: (L + W - R) / 2, y: H - 3, 'text-anchor': 'middle' }, 'time'));
    root.append(svg('text', {
      class: 'label', x: 12, y: (T + H - B) / 2, 'text-anchor': 'middle',
      transform: `rotate(-90 12 ${(T + H - B) / 2})`,
    }, yLabel));

    for (const s of series) {
      const pts = s.points.filter(p => p.t >= start - 1000 && p.t <= end + 1000);
      let d = '';
      let prev = null;
      const dots = [];
      pts.forEach((p, i) => {
        const joined = prev && (step || p.t - prev.t <= 2000);
        if (!joined) {
          d += `M${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
          const next = pts[i + 1];
          if (!step && (!next || next.t - p.t > 2000)) dots.push(p);
        } else if (step) {
          d += `H${x(p.t).toFixed(1)}V${y(p.v).toFixed(1)}`;
        } else {
          d += `L${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
        }
        prev = p;
      });
      if (step && prev) d += `H${x(end).toFixed(1)}`;
      const g = svg('g', { class: 'series', 'data-series': s.name, 'data-points': pts.length });
      if (d) {
        g.append(svg('path', {
          d, fill: 'none', stroke: s.color, 'stroke-width': s.width || 2,
          'stroke-dasharray': s.dash || 'none', 'stroke-linejoin': 'round',
        }));
      }
      for (const p of dots) g.append(svg('circle', { cx: x(p.t), cy: y(p.v), r: 2.5, fill: s.color }));
      root.append(g);
    }
    if (all.length === 0) {
      root.append(svg('text', { class: 'nodata', x: (L + W - R) / 2, y: (T + H - B) / 2, 'text-anchor': 'middle' }, 'no data yet'));
    }
    const legend = el('ul', { class: 'legend' }, series.map(s => el('li', null,
      el('span', { class: 'swatch' }), s.name)));
    // Swatch colours through CSSOM (allowed by the CSP, unlike style attributes in markup).
    legend.querySelectorAll('.swatch').forEach((sw, i) => { sw.style.background = series[i].color; });
    return el('div', { class: 'chart' }, el('h3', null, title), root, legend);
  }

  // ---- rendering -------------------------------------------------------------------------

  function setStatus(text, cls) {
    const s = document.getElementById('status');
    s.textContent = text;
    s.className = cls;
  }

  function renderHeader(cluster, listeners) {
    document.getElementById('cluster-name').textContent = cluster.name || '(unnamed cluster)';
    document.title = (cluster.name || 'Flotilla') + ' · Flotilla';
    document.getElementById('listeners').replaceChildren(...listeners.map(l => el('li', { class: 'listener' },
      el('b', null, l.load_balancer), ' ', l.protocol, ' ', el('span', { class: 'mono' }, l.bind),
      ' → ', l.target_groups.join(', ') || '(fixed response)')));
  }

  function cardClass(i) {
    // `terminating:wait`, `pending:wait`, `warmed:running`, …: the lifecycle-hook waits and the
    // warm pool look like their phase.
    if (i.state.startsWith('terminat')) return 'gone';
    if (i.health === 'unhealthy') return 'unhealthy';
    if (i.state.startsWith('pending') || i.state.startsWith('warmed')) return 'pending';
    return 'healthy';
  }

  function instanceCard(i, now) {
    const launched = Date.parse(i.launched_at);
    return el('div', { class: 'card ' + cardClass(i), 'data-instance': i.id, 'data-zone': i.zone },
      el('div', { class: 'top' },
        el('span', { class: 'id mono' }, i.id),
        el('span', { class: 'badge ' + (i.health === 'healthy' ? 'healthy' : 'unhealthy') }, i.health)),
      el('div', { class: 'facts' },
        el('span', { class: 'badge state' }, i.state.replace('_', ' ')),
        el('span', null, 'pid ', el('span', { class: 'mono' }, i.pid ?? '—')),
        i.address ? el('span', { class: 'mono' }, i.address) : null,
        el('span', { title: i.launched_at }, 'launched ', isNaN(launched) ? i.launched_at
          : clock(launched) + ' (' + age((now - launched) / 1000) + ' ago)')),
      el('div', { class: 'facts purchase' },
        el('span', { class: 'badge ' + (i.billing || 'on-demand') }, i.billing || '—'),
        el('span', { class: 'mono' }, i.instance_type || ''),
        el('span', { class: 'mono' }, i.price_per_hour == null ? 'no price' : '$' + i.price_per_hour.toFixed(4) + '/h'),
        i.interruption_deadline ? el('span', { class: 'badge unhealthy', title: i.interruption_deadline },
          'reclaimed ' + clock(Date.parse(i.interruption_deadline))) : null),
      i.limits ? el('div', { class: 'facts limits' }, ...limitFacts(i.limits)) : null);
  }

  // An image instance's CPU and memory limits: a badge per limit, "not enforced" in the
  // unhealthy colour with the reason on hover (the cgroup did not apply it).
  function limitFacts(l) {
    const fact = (text, x) => el('span', { class: 'badge ' + (x.enforced ? 'healthy' : 'unhealthy'), title: x.detail },
      text + (x.enforced ? '' : ' not enforced'));
    return [
      l.cpu ? fact('cpu ' + l.cpu.cores, l.cpu) : null,
      l.memory ? fact('mem ' + Math.round(l.memory.bytes / 1048576) + ' MiB', l.memory) : null,
    ];
  }

  // Predictive scaling: the last 48 hours measured beside the next 48 forecast, per policy.
  function forecastCharts(detail, forecast) {
    return ((forecast && forecast.policies) || []).map(p => {
      const hist = p.history.map(h => ({ t: Date.parse(h.time), v: h.load }));
      const next = p.forecast.map(f => ({ t: Date.parse(f.time), v: f.load }));
      const all = [...hist, ...next].map(x => x.t);
      const now = Date.now();
      return lineChart({
        id: 'forecast-' + detail.name + '-' + p.name,
        title: `Predictive ${p.name} (${p.mode}): ${p.metric}, measured and forecast` +
          (p.status === 'ready' ? '' : ' — ' + p.status),
        yLabel: p.metric, step: true,
        start: all.length ? Math.min(...all) : now - 3600000, end: all.length ? Math.max(...all) : now,
        series: [
          { name: 'measured', color: COLORS[0], points: hist, width: 2 },
          { name: 'forecast', color: COLORS[1], points: next, dash: '6 4' },
        ],
      });
    });
  }

  function renderGroup(detail, cluster, capacity, cost, forecast, start, end) {
    const zones = [];
    for (const z of [...(cluster.zones || []), ...detail.zones, ...detail.instances.map(i => i.zone)]) {
      if (!zones.includes(z)) zones.push(z);
    }
    // Zones outside the group's own list still get a column when the cluster has them, so a
    // drill's empty zone stays visible; they are marked as not used by the group.
    const columns = zones.map(z => {
      const here = detail.instances.filter(i => i.zone === z);
      const used = detail.zones.includes(z);
      return el('div', { class: 'zone', 'data-zone': z },
        el('h3', null, el('span', null, z), el('span', null, used ? here.length + ' instance(s)' : 'not in group')),
        here.length ? here.map(i => instanceCard(i, end)) : el('div', { class: 'empty' }, 'no instances'));
    });
    const chart = lineChart({
      id: 'capacity-' + detail.name, title: 'Desired vs in-service capacity', yLabel: 'instances',
      step: true, integer: true, start, end,
      // Desired last, dashed, so it stays visible where the two lines coincide.
      series: [
        { name: 'in service', color: COLORS[0], points: capacity.inService, width: 3 },
        { name: 'desired', color: COLORS[1], points: capacity.desired, dash: '6 4' },
      ],
    });
    const costChart = lineChart({
      id: 'cost-' + detail.name, title: 'Cost (all instances)', yLabel: '$/hour', step: true, start, end,
      series: [{ name: '$/hour', color: COLORS[2], points: cost || [] }],
    });
    const dollars = (detail.cost_per_hour || 0).toFixed(4);
    return el('section', { class: 'panel group', 'data-group': detail.name },
      el('h2', null, detail.name, el('span', { class: 'sub' },
        `desired ${detail.desired_capacity} · in service ${detail.in_service} · min ${detail.min_size} · max ${detail.max_size} · $${dollars}/hour`)),
      el('div', { class: 'group-body' }, el('div', { class: 'zones' }, columns),
        el('div', { class: 'charts' }, chart, costChart, ...forecastCharts(detail, forecast))));
  }

  function renderActivities(byGroup) {
    const rows = byGroup
      .flatMap(({ group, activities }) => activities.map(a => ({ group, ...a, t: Date.parse(a.time) })))
      .sort((a, b) => b.t - a.t)
      .slice(0, 40);
    const body = document.querySelector('#activities tbody');
    if (!rows.length) {
      body.replaceChildren(el('tr', null, el('td', { colspan: 4, class: 'cause' }, 'no activities yet')));
      return;
    }
    body.replaceChildren(...rows.map(a => el('tr', { class: 'activity' },
      el('td', { class: 'time', title: a.time }, isNaN(a.t) ? a.time : clock(a.t)),
      el('td', null, a.group),
      el('td', { class: 'st-' + a.status }, a.status.replace('_', ' ')),
      el('td', null, el('div', null, a.description), el('div', { class: 'cause' }, a.cause)))));
  }

  /** The edge panel: DNS health checks (404 without [dns]) and distributions. */
  async function renderEdge() {
    const [checks, dists] = await Promise.all([
      api('/v1/dns/health-checks').catch(e => { if (e.status === 404) return []; throw e; }),
      api('/v1/distributions'),
    ]);
    document.getElementById('edge').hidden = !checks.length && !dists.length;
    document.querySelector('#dns-health tbody').replaceChildren(...checks.map(c => el('tr', null,
      el('td', null, c.name), el('td', null, c.type), el('td', null, c.target || '–'),
      el('td', { class: c.healthy ? 'st-successful' : 'st-failed' }, c.healthy ? 'healthy' : 'unhealthy'),
      el('td', { class: 'cause' }, c.reason))));
    const bytes = n => n >= 1048576 ? (n / 1048576).toFixed(1) + ' MiB' : n >= 1024 ? (n / 1024).toFixed(1) + ' KiB' : n + ' B';
    document.querySelector('#distributions tbody').replaceChildren(...dists.map(d => el('tr', null,
      el('td', null, d.name), el('td', null, String(d.requests)),
      el('td', null, (d.hit_ratio * 100).toFixed(1) + ' %'), el('td', null, String(d.origin_requests)),
      el('td', null, bytes(d.bytes_saved)), el('td', null, bytes(d.cached_bytes) + ' of ' + bytes(d.cache_size)))));
  }

  /**
   * Cluster mode's hosts inside their zones (`GET /v1/nodes`): name, address, roles, leader,
   * instances and slots, lease age, and the ids of the instances on the host. Under `flotilla
   * up` the endpoint answers 404: no nodes, no panel.
   */
  function renderHosts(nodes, cluster, details) {
    const panel = document.getElementById('hosts');
    panel.hidden = !nodes || !nodes.length;
    if (panel.hidden) return;
    const zones = [];
    for (const z of [...(cluster.zones || []), ...nodes.map(n => n.zone)]) {
      if (!zones.includes(z)) zones.push(z);
    }
    const instances = details.flatMap(d => d.instances);
    const onHost = n => instances.filter(i => (i.address || '').startsWith(n.address + ':'));
    // A lease renewed more than 5 s ago is late (keep-alives come every third of the TTL).
    const card = n => el('div', {
      class: 'host' + (n.lease_age_ms != null && n.lease_age_ms > 5000 ? ' stale' : ''),
      'data-node': n.name, 'data-zone': n.zone,
    },
      el('div', { class: 'top' }, el('span', { class: 'name mono' }, n.name),
        n.leader ? el('span', { class: 'badge leader' }, 'leader') : null),
      el('div', { class: 'facts' },
        el('span', { class: 'mono' }, n.address),
        n.roles.map(r => el('span', { class: 'badge role' }, r)),
        n.roles.includes('compute') ? el('span', null, n.instances + ' / ' + n.slots + ' slots') : null,
        el('span', null, 'lease ' + (n.lease_age_ms == null ? '—' : (n.lease_age_ms / 1000).toFixed(1) + 's ago'))),
      el('div', { class: 'facts' }, onHost(n).map(i => el('span', { class: 'mono' }, i.id))));
    document.getElementById('host-zones').replaceChildren(...zones.map(z => {
      const here = nodes.filter(n => n.zone === z);
      return el('div', { class: 'zone', 'data-zone': z },
        el('h3', null, el('span', null, z), el('span', null, here.length + ' host(s)')),
        here.length ? here.map(card) : el('div', { class: 'empty' }, 'no hosts'));
    }));
  }

  // ---- polling ---------------------------------------------------------------------------

  async function poll() {
    const [cluster, listeners, groups, nodes] = await Promise.all([
      api('/v1/cluster'), api('/v1/listeners'), api('/v1/groups'),
      // 404 under `flotilla up` (no hosts); 503 while the store is away (keep the last view).
      api('/v1/nodes').catch(e => (e.status === 404 ? [] : undefined)),
    ]);
    const loadBalancers = [...new Set(listeners.map(l => l.load_balancer))];
    const targetGroups = [...new Set(listeners.flatMap(l => l.target_groups))];
    const [details, activities, requests, latency, capacities, forecasts] = await Promise.all([
      Promise.all(groups.map(g => api('/v1/groups/' + path(g.name)))),
      Promise.all(groups.map(g => api('/v1/groups/' + path(g.name) + '/activities'))),
      Promise.all(loadBalancers.map(lb => metric('request_count', 'load-balancer/' + lb, 'sum'))),
      Promise.all(targetGroups.map(tg => metric('target_response_time', 'target-group/' + tg, 'p99'))),
      Promise.all(groups.map(g => Promise.all([
        metric('desired_capacity', 'group/' + g.name, 'maximum'),
        metric('in_service_instances', 'group/' + g.name, 'minimum'),
        metric('cost_per_hour', 'group/' + g.name, 'average'),
      ]))),
      // An older server without the endpoint: no forecast charts.
      Promise.all(groups.map(g => api('/v1/groups/' + path(g.name) + '/forecast').catch(() => null))),
    ]);

    // The server's clock decides "now" (the browser's may be off, or virtual in tests). The
    // window is the last five minutes, or since the first datapoint when the cluster is
    // younger (at least one minute), so a fresh cluster's charts are not a sliver.
    const times = [...requests, ...capacities.flat()].flatMap(s => s || []).map(p => p.t);
    const end = times.length ? Math.max(...times) : Date.now();
    const first = times.length ? Math.min(...times) : end;
    const start = end - Math.min(WINDOW_S * 1000, Math.max(60000, end - first));

    renderHeader(cluster, listeners);
    if (nodes !== undefined) renderHosts(nodes, cluster, details);
    document.getElementById('groups').replaceChildren(...details.map((d, i) => {
      let history = polledCapacity.get(d.name) || [];
      history.push({ t: end, desired: d.desired_capacity, inService: d.in_service });
      history = history.filter(h => h.t >= start);
      polledCapacity.set(d.name, history);
      const [desired, inService, cost] = capacities[i];
      const capacity = {
        desired: desired || history.map(h => ({ t: h.t, v: h.desired })),
        inService: inService || history.map(h => ({ t: h.t, v: h.inService })),
      };
      return renderGroup(d, cluster, capacity, cost, forecasts[i], start, end);
    }));
    document.getElementById('traffic').replaceChildren(
      lineChart({
        id: 'requests-chart', title: 'Requests per second (per load balancer)', yLabel: 'requests/s',
        start, end, integer: true,
        series: loadBalancers.map((lb, i) => ({ name: lb, color: COLORS[i % COLORS.length], points: requests[i] || [] })),
      }),
      lineChart({
        id: 'latency-chart', title: 'Target response time p99 (per target group)', yLabel: 'ms',
        start, end,
        series: targetGroups.map((tg, i) => ({
          name: tg, color: COLORS[(i + 2) % COLORS.length],
          points: (latency[i] || []).map(p => ({ t: p.t, v: p.v * 1000 })),
        })),
      }));
    renderActivities(groups.map((g, i) => ({ group: g.name, activities: activities[i] })));
    await renderEdge();
    setStatus('live · updated ' + clock(Date.now()), 'live');
  }

  let timer = null;
  async function loop() {
    clearTimeout(timer);
    try {
      await poll();
      document.getElementById('auth').hidden = true;
      document.getElementById('content').hidden = false;
    } catch (e) {
      if (e instanceof Unauthorized) {
        document.getElementById('auth').hidden = false;
        document.getElementById('content').hidden = true;
        document.getElementById('auth-message').firstChild.textContent = token
          ? 'The admin API refused this token. Enter the value of '
          : 'This admin API needs its bearer token (the value of ';
        setStatus('waiting for the bearer token', 'error');
        return; // resumes on submit
      }
      setStatus('cannot reach the admin API: ' + e.message, 'error');
    }
    timer = setTimeout(loop, POLL_MS);
  }

  document.getElementById('auth').addEventListener('submit', event => {
    event.preventDefault();
    token = document.getElementById('token').value.trim() || null;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    loop();
  });

  loop();
})();
