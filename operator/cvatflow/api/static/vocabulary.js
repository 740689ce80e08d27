// The server's words, from GET /api/v1/vocabulary: phases, reserved parameter names, messages. Nothing here
// copies them; pages run after loadVocabulary() has filled `vocab` (app.js makes sure of it).

import {api} from "./api.js";

export const vocab = {phase: {}, phases: [], runPhases: [], finished: [], reserved: {}, aliases: {}, autoFilled: [],
                      errors: {}, messages: {}};
let loading = null;
let loaded = false;

export function vocabularyLoaded() {
  return loaded;
}

export function loadVocabulary() {
  loading ??= api("/api/v1/vocabulary").then((answer) => { Object.assign(vocab, answer); loaded = true; },
                                              (error) => { loading = null; throw error; });
  return loading;
}

/** A run in `phase` has ended. */
export const isFinished = (phase) => vocab.finished.includes(phase);

/** The fine-tune checkpoint's name and its legacy aliases, the template's own name first when it has one. */
export function checkpointNames() {
  const role = vocab.reserved.finetuneCheckpoint;
  return [role, ...Object.keys(vocab.aliases).filter((alias) => vocab.aliases[alias] === role)];
}
