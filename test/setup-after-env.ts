// A promise rejected without a handler is a bug (often a leaked client or an un-awaited query):
// fail the run instead of letting it pass silently.
process.on('unhandledRejection', (reason) => {
  throw reason;
});
