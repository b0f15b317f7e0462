// A move pooled → schema cut at each step, then repaired (see tier-move-cuts.ts).
import { describeCuts } from './tier-move-cuts.js';

describeCuts('pooled', 'schema');
