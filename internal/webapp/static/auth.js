// The sign-up and log-in page.

import {h, replace} from './dom.js';
import {signup, login, explain} from './api.js';

export function showAuth(main, mode) {
  const signingUp = mode === 'signup';
  const message = h('p', {class: 'message error', role: 'alert', id: 'auth-error'});
  const email = h('input', {type: 'email', id: 'email', name: 'email', required: true, autocomplete: 'email'});
  const password = h('input', {type: 'password', id: 'password', name: 'password', required: true, minlength: '8',
    autocomplete: signingUp ? 'new-password' : 'current-password'});
  const submit = h('button', {type: 'submit', id: 'auth-submit'}, signingUp ? 'Sign up' : 'Log in');
  const form = h('form', {class: 'stack auth', onsubmit: async (e) => {
    e.preventDefault();
    submit.disabled = true;
    replace(message);
    try {
      if (signingUp) await signup(email.value, password.value);
      await login(email.value, password.value); // the session's listener shows the gallery
    } catch (err) {
      replace(message, explain(err));
      submit.disabled = false;
    }
  }},
  h('h1', {}, signingUp ? 'Create an account' : 'Log in'),
  h('label', {for: 'email'}, 'Email'), email,
  h('label', {for: 'password'}, 'Password', signingUp ? ' (8 characters or more)' : ''), password,
  submit, message,
  h('p', {}, signingUp ? 'Have an account? ' : 'New here? ',
    h('a', {href: signingUp ? '#/login' : '#/signup', id: 'auth-switch'}, signingUp ? 'Log in' : 'Sign up')));
  replace(main, form);
  email.focus();
}
