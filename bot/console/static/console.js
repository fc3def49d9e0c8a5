// The console page: renders the workspace's state as Slack would and sends what the
// selected person does. Text from the bot only ever becomes text nodes (never HTML).
"use strict";

(() => {
  const state = {
    config: null,
    user: null,
    channel: null,
    data: null,
    revision: -1,
    thread: null,
    poll: null,
    values: {}, // view id -> {block_id: {action_id: value}}
    modalKey: null,
    target: null, // a message ts to scroll to (from a #CHANNEL/TS link)
  };
  const $ = (id) => document.getElementById(id);

  // -- DOM helpers -------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "testid") node.dataset.testid = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: state.user, ...body }),
    };
    const response = await fetch(path, init);
    let data = {};
    try { data = await response.json(); } catch { data = { error: `HTTP ${response.status}` }; }
    if (!response.ok && !data.error) data.error = `HTTP ${response.status}`;
    return { status: response.status, ok: response.ok && data.ok !== false, data };
  }

  function showProblem(message) {
    $("composer-error").textContent = message || "";
  }

  // -- mrkdwn, as Slack shows it -------------------------------------------------

  const EMOJI = {
    white_check_mark: "✅", warning: "⚠️", red_circle: "🔴", grey_question: "❔", x: "❌",
    fire: "🔥", raised_hand: "✋", hourglass_flowing_sand: "⏳", large_green_circle: "🟢",
    large_yellow_circle: "🟡", no_entry: "⛔", lock: "🔒", heavy_plus_sign: "➕", book: "📖",
    rotating_light: "🚨", mag: "🔍", chart_with_upwards_trend: "📈", tada: "🎉",
    heavy_check_mark: "✔️", information_source: "ℹ️", white_circle: "⚪", wrench: "🔧",
  };

  const decode = (s) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  const emojify = (s) => s.replace(/:([a-z0-9_+-]+):/g, (m, name) => EMOJI[name] || m);
  const text = (s) => document.createTextNode(emojify(decode(s)));

  // code span | <special> | *bold* | _italic_ | ~strike~ (markers need non-word edges)
  const INLINE = new RegExp([
    "`([^`\\n]+)`",
    "<([^<>\\n]+)>",
    "(^|[^\\w*])\\*(?=\\S)([^*\\n]*?\\S)\\*(?!\\w)",
    "(^|[^\\w_])_(?=\\S)([^_\\n]*?\\S)_(?!\\w)",
    "(^|[^\\w~])~(?=\\S)([^~\\n]*?\\S)~(?!\\w)",
  ].join("|"));

  function inline(parent, source) {
    let rest = source;
    while (rest) {
      const m = INLINE.exec(rest);
      if (!m) { parent.append(text(rest)); return; }
      const prefix = m[3] ?? m[5] ?? m[7] ?? "";
      parent.append(text(rest.slice(0, m.index) + prefix));
      if (m[1] !== undefined) parent.append(el("code", {}, decode(m[1])));
      else if (m[2] !== undefined) parent.append(special(m[2]));
      else {
        const [tag, inner] = m[4] !== undefined ? ["b", m[4]] : m[6] !== undefined ? ["i", m[6]] : ["s", m[8]];
        const node = el(tag);
        inline(node, inner);
        parent.append(node);
      }
      rest = rest.slice(m.index + m[0].length);
    }
  }

  function userName(id) {
    const persona = (state.config?.personas || []).find((p) => p.id === id);
    return persona ? persona.real_name : id;
  }

  function channelName(id) {
    const channel = (state.data?.channels || []).find((c) => c.id === id);
    return channel ? channel.name : id;
  }

  function special(inner) {
    const bar = inner.indexOf("|");
    const target = bar < 0 ? inner : inner.slice(0, bar);
    const label = bar < 0 ? "" : inner.slice(bar + 1);
    if (target.startsWith("@")) return el("span", { class: "mention" }, "@" + (decode(label) || userName(target.slice(1))));
    if (target.startsWith("#")) return el("span", { class: "mention" }, "#" + (decode(label) || channelName(target.slice(1))));
    if (target.startsWith("!")) {
      const word = target.slice(1).split("^")[0];
      const shown = label ? decode(label) : ["here", "channel", "everyone"].includes(word) ? "@" + word : word;
      return el("span", { class: "mention" }, shown);
    }
    const url = decode(target);
    if (/^(https?:|mailto:)/i.test(url)) {
      return el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, emojify(decode(label || target)));
    }
    return text("<" + inner + ">");
  }

  function mrkdwn(source) {
    const node = el("div", { class: "mrkdwn" });
    const parts = String(source ?? "").split("```");
    parts.forEach((part, i) => {
      if (i % 2 === 1 && i < parts.length - 1) {
        node.append(el("pre", {}, decode(part.replace(/^\n/, ""))));
      } else {
        lines(node, i % 2 === 1 ? "```" + part : part);
      }
    });
    return node;
  }

  function lines(parent, source) {
    let quote = null;
    source.split("\n").forEach((line, i, all) => {
      const q = /^(?:&gt;|>)\s?(.*)$/.exec(line);
      if (q) {
        if (quote) quote.append("\n"); else { quote = el("blockquote"); parent.append(quote); }
        inline(quote, q[1]);
        return;
      }
      quote = null;
      inline(parent, line);
      if (i < all.length - 1) parent.append("\n");
    });
  }

  function textObject(obj) {
    if (!obj) return document.createTextNode("");
    if (obj.type === "mrkdwn") return mrkdwn(obj.text);
    return el("span", { class: "plain" }, obj.emoji === false ? obj.text : emojify(obj.text || ""));
  }

  function plainText(obj) {
    return obj ? emojify(obj.text || "") : "";
  }

  // Images load only from this console or a loopback address: nothing from the internet.
  function imageSource(url, slackFile) {
    if (slackFile?.id) return `/console/files/${encodeURIComponent(slackFile.id)}`;
    try {
      const u = new URL(url || slackFile?.url || "", location.href);
      const local = u.origin === location.origin || ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname);
      if (local && /^https?:$/.test(u.protocol)) return u.href;
    } catch { /* not a URL */ }
    return null;
  }

  function image(url, alt, slackFile, attrs) {
    const src = imageSource(url, slackFile);
    if (src) return el("img", { src, alt: alt || "", ...attrs });
    return el("span", { class: "meta" }, `[image: ${alt || ""}] `, url ? special(url) : "");
  }

  // -- Block Kit -------------------------------------------------------------------

  const BLOCKS = {
    header: (b) => el("div", { class: "blk-header" }, plainText(b.text)),
    divider: () => el("hr", { class: "blk-divider" }),
    section(b, i, ctx) {
      const body = el("div", { class: "body" }, b.text ? textObject(b.text) : null);
      if (b.fields) {
        body.append(el("div", { class: "fields" },
          b.fields.map((f) => el("div", { testid: "section-field" }, textObject(f)))));
      }
      const node = el("div", { class: "blk-section" }, body);
      if (b.accessory) {
        node.append(el("div", { class: "accessory", testid: "accessory" }, element(b.accessory, i, "accessory", ctx)));
      }
      return node;
    },
    context: (b) => el("div", { class: "blk-context" }, (b.elements || []).map((e) =>
      e.type === "image" ? image(e.image_url, e.alt_text, e.slack_file) : textObject(e))),
    image: (b) => el("figure", { class: "blk-image" },
      b.title ? el("figcaption", { class: "meta" }, plainText(b.title)) : null,
      image(b.image_url, b.alt_text, b.slack_file)),
    actions: (b, i, ctx) => el("div", { class: "blk-actions" },
      (b.elements || []).map((e, j) => element(e, i, j, ctx))),
    input: (b, i, ctx) => inputBlock(b, i, ctx),
    markdown: (b) => el("div", { class: "mrkdwn" }, b.text || ""),
  };

  function blocks(list, ctx) {
    const node = el("div", { class: "blocks" });
    (list || []).forEach((b, i) => {
      const render = BLOCKS[b.type];
      const shown = render ? render(b, i, ctx) : el("div", { class: "blk-unsupported" }, `(a ${b.type} block, which this console does not draw)`);
      shown.dataset.testid = render ? `block-${b.type}` : "block-unsupported";
      node.append(shown);
    });
    return node;
  }

  const blockId = (b, i) => b.block_id || `b${i}`;
  const actionId = (e, j) => e.action_id || `a${typeof j === "number" ? j : 0}`;

  function element(e, blockIndex, position, ctx) {
    if (e.type === "image") return image(e.image_url, e.alt_text, e.slack_file);
    const aid = actionId(e, position);
    const act = (value) => send(ctx, blockIndex, position, value);
    if (e.type === "button") {
      return el("button", {
        type: "button", class: `btn ${e.style || ""}`, testid: `button-${aid}`,
        "data-value": e.value || "", "data-style": e.style || "default",
        onclick: async () => {
          if (e.confirm && !(await confirmDialog(e.confirm))) return;
          if (e.url && /^https?:/i.test(e.url)) window.open(e.url, "_blank", "noopener");
          act(undefined);
        },
      }, plainText(e.text));
    }
    if (["static_select", "overflow", "radio_buttons"].includes(e.type)) {
      const select = el("select", { testid: `select-${aid}`, onchange: () => select.value && act(select.value) },
        el("option", { value: "" }, plainText(e.placeholder) || "Select…"),
        options(e).map((o) => el("option", { value: o.value }, plainText(o.text))));
      return select;
    }
    return el("span", { class: "blk-unsupported" }, `(a ${e.type} element)`);
  }

  function options(e) {
    return [...(e.options || []), ...(e.option_groups || []).flatMap((g) => g.options || [])];
  }

  async function send(ctx, blockIndex, position, value) {
    const body = { block: blockIndex, element: position, value };
    if (ctx.viewId) Object.assign(body, { view_id: ctx.viewId, state: state.values[ctx.viewId] || {} });
    else Object.assign(body, { channel: ctx.channel, ts: ctx.ts, ephemeral: ctx.kind === "ephemeral" });
    const result = await api("/console/action", body);
    showProblem(result.ok ? "" : `The click was not sent: ${result.data.error}`);
  }

  // -- confirm dialogs and modals ----------------------------------------------------

  function confirmDialog(confirm) {
    return new Promise((resolve) => {
      const layer = $("confirm-layer");
      const done = (answer) => { layer.replaceChildren(); resolve(answer); };
      layer.replaceChildren(el("div", { class: "layer" },
        el("div", { class: "dialog", testid: "confirm-dialog", role: "dialog" },
          el("header", {}, plainText(confirm.title) || "Are you sure?"),
          el("div", { class: "content" }, textObject(confirm.text)),
          el("footer", {},
            el("button", { type: "button", class: "btn", testid: "confirm-no", onclick: () => done(false) },
              plainText(confirm.deny) || "Cancel"),
            el("button", { type: "button", class: `btn ${confirm.style || "primary"}`, testid: "confirm-yes", onclick: () => done(true) },
              plainText(confirm.confirm) || "Yes")))));
    });
  }

  function remember(viewId, bid, aid, value) {
    const view = (state.values[viewId] ??= {});
    (view[bid] ??= {})[aid] = value;
  }

  function inputBlock(b, i, ctx) {
    const e = b.element || {};
    const bid = blockId(b, i);
    const aid = actionId(e, 0);
    const testid = `input-${bid}-${aid}`;
    const saved = state.values[ctx.viewId]?.[bid]?.[aid];
    const store = (value) => remember(ctx.viewId, bid, aid, value);
    let field;
    if (["static_select", "radio_buttons", "external_select", "users_select", "conversations_select", "channels_select"].includes(e.type)) {
      const choices = e.type === "users_select"
        ? (state.config.personas || []).map((p) => ({ value: p.id, label: p.real_name }))
        : ["conversations_select", "channels_select"].includes(e.type)
          ? (state.data.channels || []).map((c) => ({ value: c.id, label: "#" + c.name }))
          : options(e).map((o) => ({ value: o.value, label: plainText(o.text) }));
      const initial = saved ?? e.initial_option?.value ?? e.initial_user ?? e.initial_conversation ?? e.initial_channel ?? "";
      field = el("select", { testid, onchange: () => store(field.value || null) },
        el("option", { value: "" }, plainText(e.placeholder) || "Select…"),
        choices.map((c) => el("option", { value: c.value, selected: c.value === initial }, c.label)));
    } else if (["checkboxes", "multi_static_select"].includes(e.type)) {
      const initial = saved ?? (e.initial_options || []).map((o) => o.value);
      field = el("select", { testid, multiple: true, onchange: () => store([...field.selectedOptions].map((o) => o.value)) },
        options(e).map((o) => el("option", { value: o.value, selected: initial.includes(o.value) }, plainText(o.text))));
    } else {
      const type = { number_input: "number", datepicker: "date", timepicker: "time", email_text_input: "email", url_text_input: "url" }[e.type] || "text";
      const initial = saved ?? e.initial_value ?? e.initial_date ?? e.initial_time ?? "";
      field = e.multiline
        ? el("textarea", { testid, rows: 3, oninput: () => store(field.value) })
        : el("input", { testid, type, oninput: () => store(field.value) });
      field.value = initial;
      if (e.placeholder) field.placeholder = plainText(e.placeholder);
    }
    const error = ctx.errors?.[bid];
    return el("div", { class: "input-block" },
      el("label", {}, plainText(b.label), b.optional ? el("span", { class: "hint" }, " (optional)") : null),
      field,
      b.hint ? el("div", { class: "hint" }, plainText(b.hint)) : null,
      error ? el("div", { class: "field-error", testid: `modal-error-${bid}` }, error) : null);
  }

  function renderModal() {
    const views = state.data?.views || [];
    const top = views[views.length - 1];
    const key = top ? JSON.stringify([top.id, top.view.hash, top.errors]) : null;
    if (key === state.modalKey) return;
    state.modalKey = key;
    const layer = $("modal-layer");
    if (!top) { layer.replaceChildren(); return; }
    const view = top.view;
    const ctx = { kind: "view", viewId: top.id, errors: top.errors };
    const general = top.errors[""];
    layer.replaceChildren(el("div", { class: "layer" },
      el("div", { class: "dialog", testid: "modal", "data-view-id": top.id, role: "dialog" },
        el("header", { testid: "modal-title" }, plainText(view.title)),
        el("div", { class: "content" },
          general ? el("div", { class: "field-error", testid: "modal-error" }, general) : null,
          blocks(view.blocks, ctx)),
        el("footer", {},
          el("button", { type: "button", class: "btn", testid: "modal-close", onclick: () => api("/console/close", { view_id: top.id }) },
            plainText(view.close) || "Close"),
          view.submit ? el("button", {
            type: "button", class: "btn primary", testid: "modal-submit",
            onclick: async () => {
              const result = await api("/console/submit", { view_id: top.id, state: state.values[top.id] || {} });
              showProblem(result.ok ? "" : `The modal was not submitted: ${result.data.error}`);
            },
          }, plainText(view.submit)) : null))));
  }

  // -- the feed -------------------------------------------------------------------

  const clock = (ts) => new Date(parseFloat(ts) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

  function meta(item, extra) {
    return el("div", { class: "meta" },
      el("span", { class: "author" }, item.author || ""),
      item.is_bot || item.kind === "ephemeral" || item.kind === "file" ? el("span", { class: "badge" }, "APP") : null,
      el("span", { class: "time" }, clock(item.ts)), extra);
  }

  function content(item) {
    const ctx = { kind: item.kind, channel: item.channel, ts: item.ts };
    return item.blocks && item.blocks.length ? blocks(item.blocks, ctx) : mrkdwn(item.text);
  }

  function renderItem(item, inThread) {
    if (item.kind === "message") {
      const topLevel = !item.thread_ts || item.thread_ts === item.ts;
      return el("div", { class: "item message", testid: "message", "data-ts": item.ts, "data-user": item.user },
        meta(item, item.edited ? el("span", { class: "edited", testid: "edited" }, "(edited)") : null),
        content(item),
        !inThread && topLevel ? el("div", {},
          item.reply_count ? el("button", { type: "button", class: "thread-link", testid: "thread-link", onclick: () => openThread(item.ts) },
            `${item.reply_count} ${item.reply_count === 1 ? "reply" : "replies"}`) : null,
          el("button", { type: "button", class: "reply-action", onclick: () => openThread(item.ts) }, "Reply in thread")) : null);
    }
    if (item.kind === "ephemeral") {
      return el("div", { class: "item ephemeral", testid: "ephemeral", "data-ts": item.ts },
        meta(item, el("span", { class: "only-you" }, " Only visible to you")), content(item));
    }
    if (item.kind === "file") {
      return el("div", { class: "item file", testid: "file", "data-file-id": item.file_id },
        meta(item), item.comment ? mrkdwn(item.comment) : null,
        item.is_image ? el("img", { src: item.url, alt: item.title }) : el("a", { href: item.url }, item.title),
        el("div", { class: "meta" }, item.title));
    }
    if (item.kind === "error") {
      const title = item.method ? `${item.method} failed: ${item.error}` : item.error;
      return el("div", { class: "item error", testid: "error-item", "data-method": item.method || "", "data-source": item.source || "" },
        el("div", { class: "meta" }, el("span", { class: "time" }, clock(item.ts)),
          item.source === "web_api" ? " — Slack refused this call, so nobody saw it" : " — only visible to you"),
        el("div", { class: "error-title" }, title),
        item.messages?.length ? el("ul", {}, item.messages.map((m) => el("li", {}, m))) : null);
    }
    return el("div", { class: "item command", testid: "command-echo", "data-ts": item.ts },
      meta(item, el("span", { class: "only-you" }, " Only visible to you")), el("code", {}, item.text));
  }

  function renderFeed(container, items, inThread) {
    const atBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
    container.replaceChildren(...items.map((item) => renderItem(item, inThread)));
    if (atBottom) container.scrollTop = container.scrollHeight;
  }

  function render() {
    const data = state.data;
    if (!data) return;
    $("channels").replaceChildren(...data.channels.map((c) => el("li", {},
      el("button", { type: "button", testid: `channel-${c.id}`, "aria-current": String(c.id === state.channel), onclick: () => { state.channel = c.id; state.thread = null; render(); } }, `# ${c.name}`))));
    $("channel-header").textContent = `# ${channelName(state.channel)}`;
    $("composer-input").placeholder = `Message #${channelName(state.channel)}, or a command: /vllm help`;
    const here = data.items.filter((i) => i.channel === state.channel);
    renderFeed($("feed"), here.filter((i) => !i.thread_ts || i.thread_ts === i.ts), false);
    const pane = $("thread-pane");
    pane.hidden = !state.thread;
    if (state.thread) {
      renderFeed($("thread-feed"), here.filter((i) => i.ts === state.thread || i.thread_ts === state.thread), true);
    }
    renderModal();
    if (state.target) {
      const target = document.querySelector(`[data-testid="message"][data-ts="${CSS.escape(state.target)}"]`);
      if (target) {
        target.classList.add("linked");
        target.scrollIntoView({ block: "center" });
        state.target = null;
      }
    }
  }

  function openThread(ts) {
    state.thread = ts;
    render();
    $("thread-input").focus();
  }

  // -- following the state ---------------------------------------------------------

  async function follow() {
    for (;;) {
      const controller = new AbortController();
      state.poll = controller;
      const user = state.user;
      try {
        const response = await fetch(`/console/state?user=${encodeURIComponent(user)}&after=${state.revision}`, { signal: controller.signal });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const data = await response.json();
        if (user !== state.user) continue;
        state.data = data;
        state.revision = data.revision;
        $("live-status").textContent = "live";
        render();
      } catch (error) {
        if (controller.signal.aborted) continue;
        $("live-status").textContent = `not live: ${error.message}; retrying`;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  function switchUser(id) {
    state.user = id;
    state.revision = -1;
    state.modalKey = null;
    const persona = state.config.personas.find((p) => p.id === id);
    $("persona-role").textContent = persona ? `${persona.role} · ${persona.id}` : "";
    state.poll?.abort();
  }

  // -- the side panel: simulator and links --------------------------------------------

  function jsonView(value, depth = 0) {
    if (value === null || typeof value !== "object") return el("span", {}, String(value));
    if (Array.isArray(value)) {
      const shown = value.slice(0, 200);
      const more = value.length > shown.length ? el("div", { class: "meta" }, `… and ${value.length - shown.length} more`) : null;
      if (shown.length && shown.every((v) => v && typeof v === "object" && !Array.isArray(v))) {
        const keys = [...new Set(shown.flatMap(Object.keys))];
        return el("div", {}, el("table", { class: "json-table" },
          el("tr", {}, keys.map((k) => el("th", {}, k))),
          shown.map((row) => el("tr", {}, keys.map((k) => el("td", {}, k in row ? jsonView(row[k], depth + 1) : ""))))), more);
      }
      return el("div", {}, shown.map((v) => jsonView(v, depth + 1)).flatMap((n) => [n, " "]), more);
    }
    return el("dl", { class: "json" }, Object.entries(value).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, jsonView(v, depth + 1))]));
  }

  async function simulator(what, body) {
    const result = body === undefined
      ? await api(`/console/simulator/${what}`)
      : await fetch(`/console/simulator/${what}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
        .then(async (r) => ({ ok: r.ok, status: r.status, data: await r.json().catch(() => ({ error: `HTTP ${r.status}` })) }));
    return result;
  }

  // The fleet at a glance: a line per Deployment, a strip of GPU cells per node (what
  // runs there, starting, faulty). An unknown shape falls back to the generic view.
  function fleetView(data) {
    if (!Array.isArray(data.deployments) || !Array.isArray(data.nodes)) return jsonView(data);
    const deployments = data.deployments.map((d) => el("div", { class: "fleet-deployment", testid: "fleet-deployment", "data-name": d.name },
      el("strong", {}, d.name),
      el("div", { class: "meta" }, `${d.serving}/${d.desired} serving · ${d.ready} ready · revision ${d.revision} · ${String(d.image || "").split(":").pop()}`)));
    const nodes = data.nodes.map((n) => el("div", { class: "fleet-node", testid: "fleet-node", "data-name": n.name, "data-schedulable": String(n.schedulable) },
      el("span", { class: "fleet-node-name" }, n.name, n.schedulable ? "" : " (cordoned)"),
      el("span", { class: "gpu-strip" }, ...(n.gpus || []).map((g) => {
        const faults = (g.faults || []).join(", ");
        const kind = faults ? "fault" : g.starting ? "starting" : g.pod ? "serving" : "free";
        return el("span", { class: `gpu gpu-${kind}`, title: `GPU ${g.gpu}: ${g.pod || "free"}${g.starting ? " (starting)" : ""}${faults ? " — " + faults : ""}` });
      }))));
    const legend = el("div", { class: "meta" }, "GPU: ", ...["serving", "starting", "fault", "free"].map((k) => el("span", {}, el("span", { class: `gpu gpu-${k}` }), ` ${k} `)));
    return el("div", {}, ...deployments, el("h4", {}, "Nodes"), legend, ...nodes);
  }

  async function refreshSimulator() {
    const [index, truth, fleet] = await Promise.all([simulator("index"), simulator("scenario"), simulator("fleet")]);
    const problems = [index, truth].filter((r) => !r.ok).map((r) => r.data.error);
    $("simulator-error").textContent = problems[0] || "";
    if (index.ok) {
      $("scenarios").replaceChildren(...(index.data.scenarios || []).map((name) => el("button", {
        type: "button", class: "btn", testid: `scenario-${name}`, "aria-pressed": String(name === index.data.scenario),
        onclick: async () => {
          const result = await simulator("scenario", { scenario: name });
          $("simulator-error").textContent = result.ok ? "" : result.data.error;
          refreshSimulator();
        },
      }, name)));
    }
    $("scenario-truth").replaceChildren(truth.ok ? jsonView(truth.data) : el("span", {}, "—"));
    $("fleet-panel").replaceChildren(fleet.ok ? fleetView(fleet.data)
      : el("span", { class: "meta" }, fleet.status === 404 ? "No fleet view: this simulator has no /fleet." : `Fleet unavailable: ${fleet.data.error}`));
  }

  function setUpSidePanel() {
    const { links, simulator: hasSimulator } = state.config;
    const names = { prometheus: "Prometheus", alertmanager: "Alertmanager" };
    $("links").replaceChildren(...Object.entries(links).map(([key, url]) =>
      el("div", {}, el("a", { href: url, target: "_blank", rel: "noopener", testid: `link-${key}` }, names[key] || key))));
    $("side-panel").hidden = !hasSimulator && !Object.keys(links).length;
    $("simulator").hidden = !hasSimulator;
    if (hasSimulator) {
      $("fleet-refresh").addEventListener("click", refreshSimulator);
      refreshSimulator();
      setInterval(refreshSimulator, 5000);
    }
  }

  // -- start ---------------------------------------------------------------------------

  async function start() {
    state.config = (await api("/console/config")).data;
    const switcher = $("user-switcher");
    switcher.replaceChildren(...state.config.personas.map((p) => el("option", { value: p.id }, `${p.real_name} (${p.role})`)));
    switcher.addEventListener("change", () => switchUser(switcher.value));
    state.channel = state.config.default_channel;
    // A link #CHANNEL/TS (``runbooks preview`` prints one) opens that channel at that message.
    const [linkChannel, linkTs] = decodeURIComponent(location.hash.slice(1)).split("/");
    if (linkChannel) state.channel = linkChannel;
    state.target = linkTs || null;
    switchUser(state.config.personas[0].id);
    $("composer").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = $("composer-input");
      const message = input.value.trim();
      if (!message) return;
      input.value = "";
      const result = await api("/console/send", { channel: state.channel, text: message });
      showProblem(result.ok ? "" : `Not sent: ${result.data.error}`);
    });
    $("thread-composer").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = $("thread-input");
      const message = input.value.trim();
      if (!message) return;
      input.value = "";
      const result = await api("/console/send", { channel: state.channel, text: message, thread_ts: state.thread });
      showProblem(result.ok ? "" : `Not sent: ${result.data.error}`);
    });
    $("thread-close").addEventListener("click", () => { state.thread = null; render(); });
    setUpSidePanel();
    follow();
  }

  start();
})();
