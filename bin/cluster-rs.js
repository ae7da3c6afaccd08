#!/usr/bin/env node
'use strict';

// npx cluster-rs [options] app.js [args...]   (see lib/launcher.js, or --help)
require('../lib/launcher.js').main(process.argv.slice(2));
