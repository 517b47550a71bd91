// The webhooks page: create (the secret is shown once), list, ping, see
// deliveries and redeliver, delete.

import {h, replace, when} from './dom.js';
import {call, explain} from './api.js';

const events = ['image.processed', 'image.failed'];

export async function showWebhooks(main) {
  const list = h('ul', {class: 'hooks', 'aria-label': 'Webhooks'});
  const message = h('p', {class: 'message', role: 'status'});
  const say = (text, error) => { message.className = error ? 'message error' : 'message'; replace(message, text); };

  const url = h('input', {type: 'url', id: 'hook-url', name: 'url', required: true, placeholder: 'https://example.com/hooks', autocomplete: 'off'});
  const boxes = events.map((ev) => h('input', {type: 'checkbox', name: 'events', value: ev, checked: true, id: `ev-${ev}`}));
  const secret = h('div', {class: 'secret', hidden: true});
  const form = h('form', {class: 'stack', onsubmit: async (e) => {
    e.preventDefault();
    const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
    try {
      const sub = await call('POST', '/v1/webhooks', {url: url.value, events: chosen});
      const code = h('code', {id: 'hook-secret'}, sub.secret);
      replace(secret, h('p', {}, 'The signing secret, shown only this once: keep it now.'), code,
        h('button', {type: 'button', onclick: () => copy(sub.secret, say)}, 'Copy'));
      secret.hidden = false;
      url.value = '';
      say('Webhook created.');
      load();
    } catch (err) { say(explain(err), true); }
  }},
  h('label', {for: 'hook-url'}, 'Endpoint URL'), url,
  h('fieldset', {}, h('legend', {}, 'Events'),
    boxes.map((b) => h('label', {class: 'check'}, b, ` ${b.value}`))),
  h('button', {type: 'submit'}, 'Create webhook'));

  async function load() {
    try {
      const page = await call('GET', '/v1/webhooks');
      replace(list, page.items.length ? page.items.map(item) : h('li', {}, 'No webhooks yet.'));
    } catch (e) { say(explain(e), true); }
  }

  function item(sub) {
    const id = encodeURIComponent(sub.id);
    const out = h('div', {class: 'hook-out', 'aria-live': 'polite'});
    const ping = async () => {
      try {
        const p = await call('POST', `/v1/webhooks/${id}/ping`);
        replace(out, p.status_code ? `Ping answered ${p.status_code} in ${p.seconds.toFixed(2)} s.` : `Ping failed: ${p.error}`);
      } catch (e) { replace(out, explain(e)); }
    };
    const deliveries = async () => {
      try {
        const page = await call('GET', `/v1/webhooks/${id}/deliveries`);
        replace(out, page.items.length ? h('table', {class: 'deliveries'},
          h('thead', {}, h('tr', {}, ['Event', 'State', 'Tries', 'Last answer', 'When', ''].map((t) => h('th', {scope: 'col'}, t)))),
          h('tbody', {}, page.items.map((d) => h('tr', {},
            h('td', {}, d.type), h('td', {}, d.state), h('td', {}, String(d.attempts)),
            h('td', {}, d.last_status ? String(d.last_status) : (d.last_error || '')),
            h('td', {}, when(d.last_attempt_at || d.created_at)),
            h('td', {}, h('button', {type: 'button', onclick: async () => {
              try {
                await call('POST', `/v1/webhooks/${id}/deliveries/${encodeURIComponent(d.id)}/redeliver`);
                say('Delivery queued again.');
                deliveries();
              } catch (e) { say(explain(e), true); }
            }}, 'Redeliver')))))) : 'No deliveries yet.');
      } catch (e) { replace(out, explain(e)); }
    };
    const remove = async () => {
      try {
        await call('DELETE', `/v1/webhooks/${id}`);
        load();
      } catch (e) { say(explain(e), true); }
    };
    return h('li', {class: 'hook'},
      h('p', {class: 'hook-url'}, sub.url),
      h('p', {}, sub.events.join(', '), sub.enabled ? '' : ` — disabled: ${sub.disabled_reason || ''}`),
      h('div', {class: 'actions'},
        h('button', {type: 'button', onclick: ping, dataset: {action: 'ping'}}, 'Ping'),
        h('button', {type: 'button', onclick: deliveries, dataset: {action: 'deliveries'}}, 'Deliveries'),
        h('button', {type: 'button', class: 'danger', onclick: remove}, 'Delete')),
      out);
  }

  replace(main, h('div', {class: 'webhooks'},
    h('h1', {}, 'Webhooks'),
    h('p', {}, 'The service POSTs a signed event to your URL when an image is done or failed.'),
    form, secret, message, h('h2', {}, 'Yours'), list));
  load();
}

async function copy(text, say) {
  try {
    await navigator.clipboard.writeText(text);
    say('Copied.');
  } catch {
    say('Copying is not allowed here: select the secret and copy it by hand.', true);
  }
}
