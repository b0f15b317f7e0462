/** The record of named schemas given to forRoot/forRootAsync (read by migrations). */
export const DATABASE_SCHEMAS = 'DatabaseModule:Schemas';
