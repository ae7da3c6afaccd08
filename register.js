'use strict';

// node -r cluster-rs/register app.js
// Installs cluster-rs before the program runs. The package installs its primary onto Node's
// own cluster object, so every require('cluster') / require('node:cluster') in the program (and
// in its dependencies) gets it, unchanged code included. In workers it changes nothing.
require('./index.js');
