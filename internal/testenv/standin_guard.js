// Preloaded into the node stand-ins (kinesalite, dynalite) by testenv and
// scripts/standins.sh. Both servers do `req.on('error', err => { throw err })`,
// so a client that dies with a request in flight (a test's SIGKILL of
// `fineo stream`, as a crash would) takes the whole server down with
// "Error: aborted" (ECONNRESET), and every later test fails to connect. AWS
// shrugs such a client off; so do the stand-ins with this. Any other
// uncaught error still ends the process.
process.on('uncaughtException', (err) => {
  if (err && (err.code === 'ECONNRESET' || err.message === 'aborted')) {
    console.error('standin: a client went away mid-request (ignored): ' + err.message);
    return;
  }
  console.error(err);
  process.exit(1);
});
