// A move schema → pooled cut at each step, then repaired (see tier-move-cuts.ts).
import { describeCuts } from './tier-move-cuts.js';

describeCuts('schema', 'pooled');
